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
#include <memory>
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

struct HoleScratch {
    std::vector<std::uint8_t> state;  // 0 unvisited, 1 outside, 2 hole (visited)
    std::vector<std::size_t> stack, region;
};

struct HoleReport {
    std::int64_t filled = 0;     // pixels added to the area
    std::int64_t remaining = 0;  // holes of the area after filling
    bool merged = false;         // a filled background piece may join two areas
};

// Holes of area `id` (4-connected non-area regions of its bounding box that do not reach the
// box's edge). A hole that holds only background and has fewer than min_area pixels is filled
// (m = 1, labels = id). A hole around another area keeps counting as a hole of this one; its own
// background pieces smaller than min_area are filled too (they are holes of the mask), which
// may join areas, reported through `merged`.
inline HoleReport fill_small_holes(std::uint8_t* m, std::int32_t* labels, int cols, std::int32_t id,
                                   const ComponentStats& s, std::int64_t min_area,
                                   HoleScratch& hs) {
    HoleReport rep;
    const int h = s.row_max - s.row_min + 1, w = s.col_max - s.col_min + 1;
    if (h < 3 || w < 3) return rep;
    const std::size_t W = static_cast<std::size_t>(cols);
    const std::size_t n = static_cast<std::size_t>(h) * static_cast<std::size_t>(w);
    hs.state.assign(n, 0);
    auto at = [&](int r, int c) -> std::int32_t& {
        return labels[static_cast<std::size_t>(r + s.row_min) * W + (c + s.col_min)];
    };
    // Marks with `mark` the 4-connected region of unvisited non-area pixels around `start`.
    auto flood = [&](std::size_t start, std::uint8_t mark) {
        hs.region.clear();
        hs.stack.assign(1, start);
        hs.state[start] = mark;
        while (!hs.stack.empty()) {
            const std::size_t i = hs.stack.back();
            hs.stack.pop_back();
            hs.region.push_back(i);
            const int r = static_cast<int>(i / w), c = static_cast<int>(i % w);
            const int nr[4] = {r - 1, r + 1, r, r};
            const int nc[4] = {c, c, c - 1, c + 1};
            for (int k = 0; k < 4; ++k) {
                if (nr[k] < 0 || nc[k] < 0 || nr[k] >= h || nc[k] >= w) continue;
                const std::size_t j = static_cast<std::size_t>(nr[k]) * w + nc[k];
                if (hs.state[j] != 0 || at(nr[k], nc[k]) == id) continue;
                hs.state[j] = mark;
                hs.stack.push_back(j);
            }
        }
    };
    for (int r = 0; r < h; ++r) {
        for (int c = 0; c < w; ++c) {
            if (r != 0 && r != h - 1 && c != 0 && c != w - 1) continue;
            const std::size_t i = static_cast<std::size_t>(r) * w + c;
            if (hs.state[i] == 0 && at(r, c) != id) flood(i, 1);
        }
    }
    std::vector<std::size_t> hole;
    for (std::size_t i0 = 0; i0 < n; ++i0) {
        const int r0 = static_cast<int>(i0 / w), c0 = static_cast<int>(i0 % w);
        if (hs.state[i0] != 0 || at(r0, c0) == id) continue;
        flood(i0, 2);
        hole = hs.region;
        bool other = false;
        for (const std::size_t i : hole) {
            other = other || at(static_cast<int>(i / w), static_cast<int>(i % w)) != 0;
        }
        if (!other) {
            if (static_cast<std::int64_t>(hole.size()) < min_area) {
                for (const std::size_t i : hole) {
                    const int r = static_cast<int>(i / w) + s.row_min;
                    const int c = static_cast<int>(i % w) + s.col_min;
                    labels[static_cast<std::size_t>(r) * W + c] = id;
                    m[static_cast<std::size_t>(r) * W + c] = 1;
                }
                rep.filled += static_cast<std::int64_t>(hole.size());
            } else {
                ++rep.remaining;
            }
            continue;
        }
        ++rep.remaining;  // a hole around another area stays a hole of this one
        for (const std::size_t i : hole) hs.state[i] = 3;  // background pieces: revisit as 3
        for (const std::size_t i : hole) {
            const int r = static_cast<int>(i / w), c = static_cast<int>(i % w);
            if (hs.state[i] != 3 || at(r, c) != 0) continue;
            // flood this background piece (4-connected, background only) marking 4
            hs.region.clear();
            hs.stack.assign(1, i);
            hs.state[i] = 4;
            while (!hs.stack.empty()) {
                const std::size_t k = hs.stack.back();
                hs.stack.pop_back();
                hs.region.push_back(k);
                const int kr = static_cast<int>(k / w), kc = static_cast<int>(k % w);
                const int nr[4] = {kr - 1, kr + 1, kr, kr};
                const int nc[4] = {kc, kc, kc - 1, kc + 1};
                for (int q = 0; q < 4; ++q) {
                    if (nr[q] < 0 || nc[q] < 0 || nr[q] >= h || nc[q] >= w) continue;
                    const std::size_t j = static_cast<std::size_t>(nr[q]) * w + nc[q];
                    if (hs.state[j] != 3 || at(nr[q], nc[q]) != 0) continue;
                    hs.state[j] = 4;
                    hs.stack.push_back(j);
                }
            }
            if (static_cast<std::int64_t>(hs.region.size()) < min_area) {
                for (const std::size_t k : hs.region) {
                    const int rr = static_cast<int>(k / w) + s.row_min;
                    const int cc = static_cast<int>(k % w) + s.col_min;
                    m[static_cast<std::size_t>(rr) * W + cc] = 1;
                }
                rep.merged = true;
            }
        }
    }
    return rep;
}

inline Piece excluded_stats(const ComponentStats& s, Reason why) {
    return dropped_component(s, why);
}

// Largest frame (pixels) whose working buffers a thread keeps between calls: 4096² (80 MiB).
constexpr std::size_t kKeptFramePixels = std::size_t{4096} * 4096;

struct FrameBuffers {
    std::unique_ptr<std::uint8_t[]> m;
    std::unique_ptr<std::int32_t[]> lab;
    std::size_t capacity = 0;
    void reserve(std::size_t n) {
        if (n <= capacity) return;
        m.reset();  // free before allocating the larger pair
        lab.reset();
        m.reset(new std::uint8_t[n]);
        lab.reset(new std::int32_t[n]);
        capacity = n;
    }
};

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
    // Frame-sized buffers without zero-filling: m is written below, lab by label_into. They are
    // kept per thread between calls up to detail::kKeptFramePixels (a stream or a batch calls
    // this once per frame of the same size: fresh pages would cost a page fault each, about a
    // sixth of the time of a 4096² frame); larger frames get buffers of their own.
    detail::FrameBuffers fresh;
    thread_local detail::FrameBuffers kept;
    detail::FrameBuffers& buf = n <= detail::kKeptFramePixels ? kept : fresh;
    buf.reserve(n);
    std::uint8_t* const m = buf.m.get();
    std::int32_t* const lab = buf.lab.get();
    {
        const std::uint8_t* ANTEMA_RESTRICT src = mask;
        std::uint8_t* ANTEMA_RESTRICT dst = m;
        for (std::size_t i = 0; i < n; ++i) dst[i] = src[i] != 0;
    }

    // Step 4: despeckle and fill small holes. Each enclosed background component is a hole of
    // exactly one 8-connected area (its border is 8-connected), so holes are found per area on
    // the area's bounding box instead of labelling the whole background.
    RunLabelling rl = label_runs(m, rows, cols, 8);
    paint_labels(rl, rows, cols, lab);
    LabelResult lr = std::move(rl.result);  // rl.runs stays: the areas' crops come from it
    std::vector<std::uint8_t> is_speck(static_cast<std::size_t>(lr.count) + 1, 0);
    for (std::int32_t id = 1; id <= lr.count; ++id) {
        const ComponentStats& s = lr.stats[static_cast<std::size_t>(id - 1)];
        if (s.area >= p.min_area) continue;
        is_speck[static_cast<std::size_t>(id)] = 1;
        out.excluded.push_back(detail::excluded_stats(s, Reason::speck));
        out.excluded_area_id.push_back(-1);
        for (int r = s.row_min; r <= s.row_max; ++r) {
            for (int c = s.col_min; c <= s.col_max; ++c) {
                const std::size_t i = static_cast<std::size_t>(r) * W + c;
                if (lab[i] == id) {
                    lab[i] = 0;
                    m[i] = 0;
                }
            }
        }
    }
    std::vector<std::int64_t> holes(static_cast<std::size_t>(lr.count) + 1, 0);
    // Areas that gained filled hole pixels: their runs no longer describe them.
    std::vector<std::uint8_t> holes_filled(static_cast<std::size_t>(lr.count) + 1, 0);
    bool merged = false;  // a filled gap joined two areas: relabel (rare: nested particles)
    {
        detail::HoleScratch hs;
        for (std::int32_t id = 1; id <= lr.count; ++id) {
            if (is_speck[static_cast<std::size_t>(id)]) continue;
            ComponentStats& s = lr.stats[static_cast<std::size_t>(id - 1)];
            if (s.holes() <= 0) continue;  // Euler number: no hole at all (most particles)
            const detail::HoleReport hr =
                detail::fill_small_holes(m, lab, cols, id, s, p.min_area, hs);
            s.area += hr.filled;
            if (hr.filled > 0) holes_filled[static_cast<std::size_t>(id)] = 1;
            holes[static_cast<std::size_t>(id)] = hr.remaining;
            merged = merged || hr.merged;
        }
    }
    // Renumber the areas 1..count without the specks (or relabel after a merge).
    std::vector<std::int32_t> area_ids;
    if (merged) {
        rl = label_runs(m, rows, cols, 8);
        paint_labels(rl, rows, cols, lab);
        lr = std::move(rl.result);
        holes_filled.assign(static_cast<std::size_t>(lr.count) + 1, 0);
        holes.assign(static_cast<std::size_t>(lr.count) + 1, 0);
        for (std::int32_t id = 1; id <= lr.count; ++id) {
            area_ids.push_back(id);
            holes[static_cast<std::size_t>(id)] = lr.stats[static_cast<std::size_t>(id - 1)].holes();
        }
    } else {
        for (std::int32_t id = 1; id <= lr.count; ++id) {
            if (!is_speck[static_cast<std::size_t>(id)]) area_ids.push_back(id);
        }
    }

    // The runs of each label, in raster order (counting sort of the run list by label).
    std::vector<std::size_t> run_begin(static_cast<std::size_t>(lr.count) + 2, 0);
    for (const Run& run : rl.runs) ++run_begin[static_cast<std::size_t>(run.label) + 1];
    for (std::size_t i = 1; i < run_begin.size(); ++i) run_begin[i] += run_begin[i - 1];
    std::vector<std::uint32_t> run_order(rl.runs.size());
    {
        std::vector<std::size_t> next(run_begin.begin(), run_begin.end() - 1);
        for (std::size_t k = 0; k < rl.runs.size(); ++k) {
            run_order[next[static_cast<std::size_t>(rl.runs[k].label)]++] =
                static_cast<std::uint32_t>(k);
        }
    }

    // Steps 5 and 6: gate and separate, per 8-connected area.
    struct Candidate {
        Piece piece;  // image coordinates
        bool separated;
        std::int32_t area_id;
        double convexity;
        bool may_have_holes;
    };
    std::vector<Candidate> cand;
    out.n_areas = static_cast<std::int32_t>(area_ids.size());
    const UecsParams up{p.min_marker_area, p.threshold, /*area_known_non_convex=*/true};
    std::vector<std::uint8_t> crop;
    for (std::int32_t aid = 0; aid < out.n_areas; ++aid) {
        const std::int32_t id = area_ids[static_cast<std::size_t>(aid)];
        const ComponentStats& s = lr.stats[static_cast<std::size_t>(id - 1)];
        const int h = s.row_max - s.row_min + 1, w = s.col_max - s.col_min + 1;
        if (!holes_filled[static_cast<std::size_t>(id)]) {
            // From the area's runs: O(area), and the label image is not read.
            crop.assign(static_cast<std::size_t>(h) * static_cast<std::size_t>(w), 0);
            std::uint8_t* const cp = crop.data();
            for (std::size_t q = run_begin[static_cast<std::size_t>(id)];
                 q < run_begin[static_cast<std::size_t>(id) + 1]; ++q) {
                const Run& run = rl.runs[run_order[q]];
                std::uint8_t* row = cp + static_cast<std::size_t>(run.row - s.row_min) * w;
                std::fill(row + (run.c0 - s.col_min), row + (run.c1 - s.col_min) + 1,
                          std::uint8_t{1});
            }
        } else {
            crop.resize(static_cast<std::size_t>(h) * static_cast<std::size_t>(w));
            // Local pointers and bounds: byte stores may alias anything, so reading them
            // through `s` or `crop` inside the loop would reload them for every pixel.
            std::uint8_t* ANTEMA_RESTRICT cp = crop.data();
            const int r_lo = s.row_min, c_lo = s.col_min;
            for (int r = 0; r < h; ++r) {
                const std::int32_t* ANTEMA_RESTRICT l_row =
                    lab + static_cast<std::size_t>(r + r_lo) * W + static_cast<std::size_t>(c_lo);
                std::uint8_t* ANTEMA_RESTRICT out_row = cp + static_cast<std::size_t>(r) * w;
                for (int c = 0; c < w; ++c) out_row[c] = l_row[c] == id;
            }
        }
        // Traced on the crop (crop == (lab == id) inside the box, and no pixel of the area lies
        // outside it): the crop is hot in cache, the frame's label image is not.
        const std::uint8_t* const crop_px = crop.data();
        const int r_lo = s.row_min, c_lo = s.col_min;
        auto fg = [crop_px, r_lo, c_lo, h, w](int r, int c) {
            const int y = r - r_lo, x = c - c_lo;
            return y >= 0 && x >= 0 && y < h && x < w &&
                   crop_px[static_cast<std::size_t>(y) * static_cast<std::size_t>(w) +
                           static_cast<std::size_t>(x)] != 0;
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
            pc.bitmap = std::move(crop);  // crop is refilled (resize) for the next area
            return pc;
        };
        if (p.method == Method::none) {
            cand.push_back({whole(), false, aid, conv, holes[static_cast<std::size_t>(id)] > 0});
            continue;
        }
        if (holes[static_cast<std::size_t>(id)] > p.max_holes) {
            out.excluded.push_back(detail::excluded_stats(s, Reason::too_many_holes));
            out.excluded_area_id.push_back(aid);
            continue;
        }
        if (conv > p.threshold) {
            cand.push_back({whole(), false, aid, conv, holes[static_cast<std::size_t>(id)] > 0});
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
            cand.push_back({std::move(pc), true, aid, conv, true});
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
        if (cd.may_have_holes) {
            detail::fill_all_holes(pc.bitmap, pc.rows, pc.cols);
            std::int64_t a = 0;
            for (const std::uint8_t v : pc.bitmap) a += v;
            pc.area = a;
        }
        out.particles.push_back(std::move(pc));
        out.separated.push_back(cd.separated ? 1 : 0);
        out.area_id.push_back(cd.area_id);
        out.area_convexity.push_back(cd.convexity);
    }
    return out;
}

}  // namespace antema
