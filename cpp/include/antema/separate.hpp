// The mask -> particles step of one frame: SPEC section 1, steps 4 to 7.
//
//   4. Despeckle: 8-connected areas smaller than min_area px are removed (reason `speck`);
//      background holes (4-connected, not reaching the image border) smaller than min_area px
//      are filled.
//   5. Gate (separation on only), per 8-connected area: more than max_holes holes ->
//      `too_many_holes` (checked first); convexity > threshold -> one particle as it is;
//      convexity < min_convexity -> `low_convexity`; otherwise -> separation.
//   6. Separate with UECS (uecs.hpp) or the watershed (watershed.hpp); pieces the method drops are
//      reported with its reasons. With method none every area is a particle as it is.
//   7. Clean every particle: touching the image border -> `border` (after separation, so the
//      other half of a pair survives); smaller than min_area px -> `speck`; holes filled.
//
// Separated particles keep their own bitmaps and may overlap. Nothing is dropped silently: every
// exclusion carries its reason, area and bounding box (image coordinates).
//
// Public API (namespace antema):
//   FrameResult postprocess_frame(const uint8_t* mask, int rows, int cols, const FrameParams&);
#pragma once

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "label.hpp"
#include "shape.hpp"
#include "uecs.hpp"
#include "watershed.hpp"

namespace antema {

enum class Method : int { none = 0, uecs = 1, watershed = 2 };

struct FrameParams {
    Method method = Method::uecs;
    double threshold = 0.95;
    double min_convexity = 0.5;
    std::int64_t max_holes = 10;
    std::int64_t min_area = 1;          // despeckle area, px
    std::int64_t min_marker_area = 30;  // UECS minimum marker area, px
    double watershed_h = 2.0;
};

// Particles: Piece in image coordinates (bitmap set), with `erosions` for UECS particles.
// Exclusions: Piece in image coordinates (bitmap empty) with `reason`.
struct FrameResult {
    std::vector<Piece> particles;
    std::vector<std::uint8_t> separated;  // per particle: came out of the separation step
    std::vector<std::int32_t> area_id;    // per particle: its 8-connected area (0-based)
    std::vector<double> area_convexity;   // per particle: convexity of that area
    std::vector<Piece> excluded;
    std::vector<std::int32_t> excluded_area_id;  // -1 for specks removed before the gate
    std::int32_t n_areas = 0;                   // 8-connected areas after despeckling
};

namespace detail {

// Fills every hole (4-connected background not reaching the bitmap's edge) of a bitmap.
inline void fill_all_holes(std::vector<std::uint8_t>& bm, int rows, int cols) {
    const std::size_t n = bm.size();
    std::vector<std::uint8_t> outside(n, 0);
    std::vector<std::size_t> stack;
    auto seed = [&](int r, int c) {
        const std::size_t i = static_cast<std::size_t>(r) * cols + c;
        if (!bm[i] && !outside[i]) {
            outside[i] = 1;
            stack.push_back(i);
        }
    };
    for (int c = 0; c < cols; ++c) {
        seed(0, c);
        seed(rows - 1, c);
    }
    for (int r = 0; r < rows; ++r) {
        seed(r, 0);
        seed(r, cols - 1);
    }
    while (!stack.empty()) {
        const std::size_t i = stack.back();
        stack.pop_back();
        const int r = static_cast<int>(i / cols), c = static_cast<int>(i % cols);
        if (r > 0) seed(r - 1, c);
        if (r + 1 < rows) seed(r + 1, c);
        if (c > 0) seed(r, c - 1);
        if (c + 1 < cols) seed(r, c + 1);
    }
    for (std::size_t i = 0; i < n; ++i) {
        if (!bm[i] && !outside[i]) bm[i] = 1;
    }
}

inline Piece excluded_stats(const ComponentStats& s, Reason why) {
    return dropped_component(s, why);
}

}  // namespace detail

inline FrameResult postprocess_frame(const std::uint8_t* mask, int rows, int cols,
                                     const FrameParams& p) {
    if (rows < 0 || cols < 0) {
        throw std::invalid_argument("antema::postprocess_frame: expected non-negative sizes, got " +
                                    std::to_string(rows) + " x " + std::to_string(cols));
    }
    if (!(p.threshold >= 0.0 && p.threshold <= 1.0 && p.min_convexity >= 0.0 &&
          p.min_convexity <= p.threshold) ||
        p.max_holes < 0 || p.min_area < 0 || p.min_marker_area < 0) {
        throw std::invalid_argument(
            "antema::postprocess_frame: expected 0 <= min_convexity <= threshold <= 1 and "
            "non-negative max_holes, min_area, min_marker_area");
    }
    FrameResult out;
    const std::size_t n = static_cast<std::size_t>(rows) * static_cast<std::size_t>(cols);
    if (n == 0) return out;
    const std::size_t W = static_cast<std::size_t>(cols);
    std::vector<std::uint8_t> m(n);
    for (std::size_t i = 0; i < n; ++i) m[i] = mask[i] ? 1 : 0;
    std::vector<std::int32_t> lab(n);

    // Step 4: despeckle and fill small holes.
    {
        const LabelResult lr = label_into(m.data(), rows, cols, 8, lab.data());
        std::vector<std::uint8_t> remove(static_cast<std::size_t>(lr.count) + 1, 0);
        bool any = false;
        for (std::int32_t id = 1; id <= lr.count; ++id) {
            const ComponentStats& s = lr.stats[static_cast<std::size_t>(id - 1)];
            if (s.area < p.min_area) {
                remove[static_cast<std::size_t>(id)] = 1;
                any = true;
                out.excluded.push_back(detail::excluded_stats(s, Reason::speck));
                out.excluded_area_id.push_back(-1);
            }
        }
        if (any) {
            for (std::size_t i = 0; i < n; ++i) {
                if (lab[i] && remove[static_cast<std::size_t>(lab[i])]) m[i] = 0;
            }
        }
        std::vector<std::uint8_t> bg(n);
        for (std::size_t i = 0; i < n; ++i) bg[i] = !m[i];
        const LabelResult br = label_into(bg.data(), rows, cols, 4, lab.data());
        std::vector<std::uint8_t> fill(static_cast<std::size_t>(br.count) + 1, 0);
        any = false;
        for (std::int32_t id = 1; id <= br.count; ++id) {
            const ComponentStats& s = br.stats[static_cast<std::size_t>(id - 1)];
            if (!s.touches_border && s.area < p.min_area) {
                fill[static_cast<std::size_t>(id)] = 1;
                any = true;
            }
        }
        if (any) {
            for (std::size_t i = 0; i < n; ++i) {
                if (lab[i] && fill[static_cast<std::size_t>(lab[i])]) m[i] = 1;
            }
        }
    }

    // Steps 5 and 6: gate and separate, per 8-connected area.
    struct Candidate {
        Piece piece;  // image coordinates
        bool separated;
        std::int32_t area_id;
        double convexity;
    };
    std::vector<Candidate> cand;
    const LabelResult lr = label_into(m.data(), rows, cols, 8, lab.data());
    out.n_areas = lr.count;
    const UecsParams up{p.min_marker_area, p.threshold};
    std::vector<std::uint8_t> crop;
    for (std::int32_t id = 1; id <= lr.count; ++id) {
        const ComponentStats& s = lr.stats[static_cast<std::size_t>(id - 1)];
        const std::int32_t aid = id - 1;
        const int h = s.row_max - s.row_min + 1, w = s.col_max - s.col_min + 1;
        crop.assign(static_cast<std::size_t>(h) * static_cast<std::size_t>(w), 0);
        for (int r = s.row_min; r <= s.row_max; ++r) {
            for (int c = s.col_min; c <= s.col_max; ++c) {
                if (lab[static_cast<std::size_t>(r) * W + c] == id) {
                    crop[static_cast<std::size_t>(r - s.row_min) * w + (c - s.col_min)] = 1;
                }
            }
        }
        auto fg = [&lab, rows, cols, W, id](int r, int c) {
            return r >= 0 && c >= 0 && r < rows && c < cols &&
                   lab[static_cast<std::size_t>(r) * W + static_cast<std::size_t>(c)] == id;
        };
        const ShapeGeometry g = shape_geometry(fg, {{s.first_row, s.first_col}}, s.row_min,
                                               s.row_max, /*with_feret=*/false);
        const double conv = convexity_of(g.perimeter, g.convex_perimeter);
        auto whole = [&]() {
            Piece pc;
            pc.row0 = s.row_min;
            pc.col0 = s.col_min;
            pc.rows = h;
            pc.cols = w;
            pc.area = s.area;
            pc.bitmap = crop;
            return pc;
        };
        if (p.method == Method::none) {
            cand.push_back({whole(), false, aid, conv});
            continue;
        }
        if (s.holes() > p.max_holes) {
            out.excluded.push_back(detail::excluded_stats(s, Reason::too_many_holes));
            out.excluded_area_id.push_back(aid);
            continue;
        }
        if (conv > p.threshold) {
            cand.push_back({whole(), false, aid, conv});
            continue;
        }
        if (conv < p.min_convexity) {
            out.excluded.push_back(detail::excluded_stats(s, Reason::low_convexity));
            out.excluded_area_id.push_back(aid);
            continue;
        }
        SeparationResult sep = p.method == Method::uecs
                                   ? uecs(crop.data(), h, w, up)
                                   : watershed(crop.data(), h, w, p.watershed_h);
        for (Piece& pc : sep.particles) {
            pc.row0 += s.row_min;
            pc.col0 += s.col_min;
            cand.push_back({std::move(pc), true, aid, conv});
        }
        for (Piece& pc : sep.dropped) {
            pc.row0 += s.row_min;
            pc.col0 += s.col_min;
            out.excluded.push_back(std::move(pc));
            out.excluded_area_id.push_back(aid);
        }
    }

    // Step 7: clean every particle.
    for (Candidate& cd : cand) {
        Piece& pc = cd.piece;
        const bool border =
            pc.row0 == 0 || pc.col0 == 0 || pc.row0 + pc.rows == rows || pc.col0 + pc.cols == cols;
        if (border || pc.area < p.min_area) {
            pc.reason = border ? Reason::border : Reason::speck;
            pc.bitmap.clear();
            pc.bitmap.shrink_to_fit();
            out.excluded.push_back(std::move(pc));
            out.excluded_area_id.push_back(cd.area_id);
            continue;
        }
        detail::fill_all_holes(pc.bitmap, pc.rows, pc.cols);
        std::int64_t a = 0;
        for (const std::uint8_t v : pc.bitmap) a += v;
        pc.area = a;
        out.particles.push_back(std::move(pc));
        out.separated.push_back(cd.separated ? 1 : 0);
        out.area_id.push_back(cd.area_id);
        out.area_convexity.push_back(cd.convexity);
    }
    return out;
}

}  // namespace antema
