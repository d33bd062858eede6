// UECS: ultimate erosion of convex shapes (Park, Huang, Ji & Ding, "Segmentation, inference and
// classification of partially overlapping nanoparticles", IEEE TPAMI 35 (2013) 669), as adapted
// by ANTEMA and written down in SPEC section 3.
//
// Input: one non-convex area A (its tight bounding-box crop). Parameters: convexity threshold t
// and minimum marker area m.
//
// Erode. E = A. In iteration k = 0, 1, 2, ... the element is the 2 x 2 square (k even) or the
// 3 x 3 cross (k odd). E is labelled (8-connected); a component C is eroded (erosion with the
// element, then an opening with the cross) when it is non-convex (convexity <= t or
// 1 - solidity >= 0.05), area > m and minor axis length > floor(m / 10). Otherwise it is final and
// leaves E: a marker with erosion count k + 1 when area > m, else dropped (`marker_too_small`).
// Since the components of E are 8-separated, eroding their union equals the union of their
// erosions, so one pass over the crop erodes them all. A component that vanishes in an erosion
// is reported as `marker_too_small` as well. The loop also ends when two consecutive iterations
// change nothing (the remaining components become final) or after 2 * (rows + cols) + 4
// iterations, so that it always terminates.
//
// Regrow. Each marker independently, at most n = erosion count steps, step j with the square
// (j even) or the cross (j odd): D = closing_cross(dilate(M)); R = D \ M; M |= R & A; after a
// square step stop when R & A is empty or smaller than 25 % of R. A regrown particle that is
// still non-convex is dropped (`regrown_non_convex`). Each regrowth step works on the marker's
// bounding box grown by 3 px, which D never leaves, so the result is that of the whole crop.
//
// Morphology conventions: morphology.hpp. Convexity and solidity: shape.hpp (SPEC section 2).
// Minor axis length: MATLAB's, 4 * sqrt(lambda_min + 1/12) of the pixel coordinates' covariance.
//
// Public API (namespace antema):
//   SeparationResult uecs(const uint8_t* area, int rows, int cols, const UecsParams&);
// Coordinates in the result are relative to the crop.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "label.hpp"
#include "morphology.hpp"
#include "shape.hpp"

namespace antema {

// Why an area or a piece was excluded. The numbers are part of the binding's contract.
enum class Reason : std::int32_t {
    speck = 1,
    border = 2,
    low_convexity = 3,
    too_many_holes = 4,
    marker_too_small = 5,
    regrown_non_convex = 6,
};

// A particle (with its bitmap) or a dropped piece (bitmap left empty), in the coordinates of the
// crop it came from: tight bounding box row0..row0+rows-1, col0..col0+cols-1.
struct Piece {
    int row0 = 0, col0 = 0, rows = 0, cols = 0;
    std::int64_t area = 0;
    std::int32_t erosions = 0;  // UECS erosion count of the marker (0 when not from UECS)
    Reason reason = Reason::speck;  // meaningful for dropped pieces only
    std::vector<std::uint8_t> bitmap;  // rows * cols, 0/1 (particles only)
};

struct SeparationResult {
    std::vector<Piece> particles;
    std::vector<Piece> dropped;
};

struct UecsParams {
    std::int64_t min_marker_area = 30;
    double threshold = 0.95;
    // The caller already knows the whole area is non-convex (the convexity gate sent it), so
    // iteration 0 need not measure it again. Only a shortcut: the result is the same.
    bool area_known_non_convex = false;
};

namespace detail {

// Tight bounding box of the nonzero pixels of a rows x cols image; false when empty.
inline bool nonzero_bbox(const std::uint8_t* img, int rows, int cols, int& r0, int& c0, int& r1,
                         int& c1) {
    r0 = rows;
    c0 = cols;
    r1 = -1;
    c1 = -1;
    const std::size_t w = static_cast<std::size_t>(cols);
    for (int r = 0; r < rows; ++r) {
        const std::uint8_t* m = img + static_cast<std::size_t>(r) * w;
        for (int c = 0; c < cols; ++c) {
            if (!m[c]) continue;
            r0 = std::min(r0, r);
            r1 = std::max(r1, r);
            c0 = std::min(c0, c);
            c1 = std::max(c1, c);
        }
    }
    return r1 >= 0;
}

// The nonzero pixels of an image as a Piece (tight box, bitmap copied when keep_bitmap).
inline Piece piece_of(const std::uint8_t* img, int rows, int cols, bool keep_bitmap) {
    Piece p;
    int r0, c0, r1, c1;
    if (!nonzero_bbox(img, rows, cols, r0, c0, r1, c1)) return p;
    p.row0 = r0;
    p.col0 = c0;
    p.rows = r1 - r0 + 1;
    p.cols = c1 - c0 + 1;
    if (keep_bitmap) p.bitmap.assign(static_cast<std::size_t>(p.rows) * p.cols, 0);
    const std::size_t w = static_cast<std::size_t>(cols);
    for (int r = r0; r <= r1; ++r) {
        for (int c = c0; c <= c1; ++c) {
            if (!img[static_cast<std::size_t>(r) * w + c]) continue;
            ++p.area;
            if (keep_bitmap) {
                p.bitmap[static_cast<std::size_t>(r - r0) * p.cols + (c - c0)] = 1;
            }
        }
    }
    return p;
}

// UECS's convexity test: convex when convexity > t and 1 - solidity < 0.05.
inline bool uecs_convex(double perimeter, double convex_perimeter, std::int64_t area,
                        std::int64_t convex_area, double t) {
    const double conv = convexity_of(perimeter, convex_perimeter);
    const double sol =
        convex_area > 0 ? static_cast<double>(area) / static_cast<double>(convex_area) : 1.0;
    return !(conv <= t || 1.0 - sol >= 0.05);
}

// The same test for component `id` of a label image (no copy: traced through the labels).
inline bool component_convex(const std::int32_t* labels, int rows, int cols, std::int32_t id,
                             const ComponentStats& s, double t) {
    const std::size_t w = static_cast<std::size_t>(cols);
    auto fg = [labels, rows, cols, w, id](int r, int c) {
        return r >= 0 && c >= 0 && r < rows && c < cols &&
               labels[static_cast<std::size_t>(r) * w + static_cast<std::size_t>(c)] == id;
    };
    const std::vector<std::pair<int, int>> starts{{s.first_row, s.first_col}};
    const ShapeGeometry g =
        shape_geometry(fg, starts, s.row_min, s.row_max, /*with_feret=*/false, s.area);
    if (g.low_solidity_exit) return false;  // 1 - solidity >= 0.05: non-convex whatever t is
    return uecs_convex(g.perimeter, g.convex_perimeter, s.area, g.convex_area, t);
}

// The same test for all nonzero pixels of an image (several pieces allowed).
inline bool image_convex(const std::uint8_t* img, int rows, int cols, double t) {
    const ConvexStats st = convex_stats(img, rows, cols);
    if (st.area == 0) return false;
    return uecs_convex(st.perimeter, st.convex_perimeter, st.area, st.convex_area, t);
}

// MATLAB's minor axis length of component `id`: 4 * sqrt(lambda_min + 1/12).
inline double minor_axis_length(const std::int32_t* labels, int cols, std::int32_t id,
                                const ComponentStats& s) {
    const std::size_t w = static_cast<std::size_t>(cols);
    // Integer moments (exact; the doubles they become are the sums a double loop would give).
    std::int64_t sr = 0, sc = 0, srr = 0, scc = 0, src = 0;
    const int r_lo = s.row_min, r_hi = s.row_max, c_lo = s.col_min, c_hi = s.col_max;
    for (int r = r_lo; r <= r_hi; ++r) {
        const std::int32_t* l = labels + static_cast<std::size_t>(r) * w;
        const std::int64_t y = r - r_lo;
        std::int64_t n_row = 0, sx = 0, sxx = 0;
        for (int c = c_lo; c <= c_hi; ++c) {
            const std::int64_t in = l[c] == id;
            const std::int64_t x = c - c_lo;
            n_row += in;
            sx += in * x;
            sxx += in * x * x;
        }
        sr += n_row * y;
        srr += n_row * y * y;
        sc += sx;
        scc += sxx;
        src += sx * y;
    }
    const double n = static_cast<double>(s.area);
    const double mr = static_cast<double>(sr) / n, mc = static_cast<double>(sc) / n;
    const double a = static_cast<double>(scc) / n - mc * mc;
    const double b = static_cast<double>(srr) / n - mr * mr;
    const double d = static_cast<double>(src) / n - mr * mc;
    const double lam = 0.5 * (a + b - std::sqrt((a - b) * (a - b) + 4.0 * d * d));
    return 4.0 * std::sqrt(std::max(lam, 0.0) + 1.0 / 12.0);
}

inline Piece dropped_component(const ComponentStats& s, Reason why) {
    Piece p;
    p.row0 = s.row_min;
    p.col0 = s.col_min;
    p.rows = s.row_max - s.row_min + 1;
    p.cols = s.col_max - s.col_min + 1;
    p.area = s.area;
    p.reason = why;
    return p;
}

struct RegrowScratch {
    std::vector<std::uint8_t> full;  // crop-sized marker canvas, all zero between markers
    std::vector<std::uint8_t> m, d1, d2, tmp;
};

// Regrows a marker (tight bitmap `mk` of size mh x mw at r0, c0 of the crop) inside `area` and
// returns the regrown particle as a Piece in crop coordinates. Each step works on the marker's
// bounding box grown by 3 px (clipped to the crop): D = closing(dilation(M)) lies within 2 px of
// M's box, so the result equals the computation on the whole crop.
inline Piece regrow(const std::vector<std::uint8_t>& mk, int r0, int c0, int mh, int mw,
                    const std::uint8_t* area, int rows, int cols, int count, RegrowScratch& s) {
    const std::size_t W = static_cast<std::size_t>(cols);
    s.full.resize(static_cast<std::size_t>(rows) * W, 0);
    std::uint8_t* const full = s.full.data();
    for (int r = 0; r < mh; ++r) {
        const std::uint8_t* src = mk.data() + static_cast<std::size_t>(r) * mw;
        std::copy(src, src + mw, full + static_cast<std::size_t>(r + r0) * W + c0);
    }
    int br0 = r0, bc0 = c0, br1 = r0 + mh - 1, bc1 = c0 + mw - 1;  // marker box
    for (int j = 0; j < count; ++j) {
        const bool square = j % 2 == 0;
        const int wr0 = std::max(0, br0 - 3), wc0 = std::max(0, bc0 - 3);
        const int wr1 = std::min(rows - 1, br1 + 3), wc1 = std::min(cols - 1, bc1 + 3);
        const int h = wr1 - wr0 + 1, w = wc1 - wc0 + 1;
        const std::size_t n = static_cast<std::size_t>(h) * static_cast<std::size_t>(w);
        s.m.resize(n);
        s.d1.resize(n);
        s.d2.resize(n);
        s.tmp.resize(n);
        std::uint8_t* const mm = s.m.data();
        for (int r = 0; r < h; ++r) {
            const std::uint8_t* src = full + static_cast<std::size_t>(r + wr0) * W + wc0;
            std::copy(src, src + w, mm + static_cast<std::size_t>(r) * w);
        }
        dilate(mm, s.d1.data(), h, w, square ? Element::square2 : Element::cross3);
        close_cross(s.d1.data(), s.d2.data(), s.tmp.data(), h, w);
        const std::uint8_t* const d2 = s.d2.data();
        std::int64_t ring = 0, accepted = 0;
        int nr0 = br0, nr1 = br1, nc0 = bc0, nc1 = bc1;
        for (int r = 0; r < h; ++r) {
            const std::uint8_t* ANTEMA_RESTRICT d2_row = d2 + static_cast<std::size_t>(r) * w;
            const std::uint8_t* ANTEMA_RESTRICT m_row = mm + static_cast<std::size_t>(r) * w;
            const std::uint8_t* ANTEMA_RESTRICT a_row =
                area + static_cast<std::size_t>(r + wr0) * W + wc0;
            std::uint8_t* ANTEMA_RESTRICT f_row = full + static_cast<std::size_t>(r + wr0) * W + wc0;
            // Branch-free count of the ring R = D \ M and of R & A (added to the marker); all
            // values are 0/1. The box grows only on rows where something was accepted.
            int ring_row = 0, acc_row = 0;
            for (int c = 0; c < w; ++c) {
                const int in_ring = d2_row[c] & (m_row[c] ^ 1);
                const int acc = in_ring & a_row[c];
                ring_row += in_ring;
                acc_row += acc;
                f_row[c] = static_cast<std::uint8_t>(f_row[c] | acc);
            }
            ring += ring_row;
            if (acc_row == 0) continue;
            accepted += acc_row;
            auto accepted_at = [&](int c) { return d2_row[c] && !m_row[c] && a_row[c]; };
            int first = 0, last = w - 1;
            while (!accepted_at(first)) ++first;
            while (!accepted_at(last)) --last;
            nr0 = std::min(nr0, r + wr0);
            nr1 = std::max(nr1, r + wr0);
            nc0 = std::min(nc0, first + wc0);
            nc1 = std::max(nc1, last + wc0);
        }
        br0 = nr0;
        br1 = nr1;
        bc0 = nc0;
        bc1 = nc1;
        if (square && (accepted == 0 || 4 * accepted < ring)) break;
    }
    Piece p;
    p.row0 = br0;
    p.col0 = bc0;
    p.rows = br1 - br0 + 1;
    p.cols = bc1 - bc0 + 1;
    p.bitmap.assign(static_cast<std::size_t>(p.rows) * p.cols, 0);
    std::uint8_t* const bm = p.bitmap.data();
    std::int64_t a = 0;
    for (int r = br0; r <= br1; ++r) {
        std::uint8_t* f_row = full + static_cast<std::size_t>(r) * W + bc0;
        std::uint8_t* b_row = bm + static_cast<std::size_t>(r - br0) * p.cols;
        for (int c = 0; c < p.cols; ++c) {
            b_row[c] = f_row[c];
            a += f_row[c];
        }
        std::fill(f_row, f_row + p.cols, std::uint8_t{0});  // clean canvas for the next marker
    }
    p.area = a;
    return p;
}

}  // namespace detail

inline SeparationResult uecs(const std::uint8_t* area, int rows, int cols, const UecsParams& p) {
    if (rows < 0 || cols < 0) {
        throw std::invalid_argument("antema::uecs: expected non-negative sizes, got " +
                                    std::to_string(rows) + " x " + std::to_string(cols));
    }
    if (!(p.threshold >= 0.0 && p.threshold <= 1.0) || p.min_marker_area < 0) {
        throw std::invalid_argument(
            "antema::uecs: expected threshold in [0, 1] and min_marker_area >= 0, got " +
            std::to_string(p.threshold) + " and " + std::to_string(p.min_marker_area));
    }
    SeparationResult out;
    const std::size_t n = static_cast<std::size_t>(rows) * static_cast<std::size_t>(cols);
    if (n == 0) return out;
    const std::size_t W = static_cast<std::size_t>(cols);
    std::vector<std::uint8_t> a(n), e(n), x(n), y(n), t1(n), t2(n);
    {
        const std::uint8_t* ANTEMA_RESTRICT src = area;
        std::uint8_t* ANTEMA_RESTRICT dst = a.data();
        for (std::size_t i = 0; i < n; ++i) dst[i] = src[i] != 0;
    }
    e = a;
    std::vector<std::int32_t> lab(n);
    struct Marker {
        std::vector<std::uint8_t> bitmap;  // tight box r0, c0, h x w
        int count, r0, c0, h, w;
    };
    std::vector<Marker> markers;
    const std::int64_t m = p.min_marker_area;
    const double axis_min = static_cast<double>(m / 10);
    const int limit = 2 * (rows + cols) + 4;
    int unchanged = 0;
    std::vector<std::int32_t> eroded;
    for (int k = 0;; ++k) {
        const LabelResult lr = label_into(e.data(), rows, cols, 8, lab.data());
        if (lr.count == 0) break;
        const bool square = k % 2 == 0;
        x = e;  // the components to erode: E without the final ones (cleared below)
        eroded.clear();
        for (std::int32_t id = 1; id <= lr.count; ++id) {
            const ComponentStats& s = lr.stats[static_cast<std::size_t>(id - 1)];
            const bool known = k == 0 && lr.count == 1 && p.area_known_non_convex;
            const bool erode_it = s.area > m && k < limit && unchanged < 2 &&
                                  detail::minor_axis_length(lab.data(), cols, id, s) > axis_min &&
                                  (known || !detail::component_convex(lab.data(), rows, cols, id,
                                                                      s, p.threshold));
            if (erode_it) {
                eroded.push_back(id);
                continue;
            }
            const int r_lo = s.row_min, c_lo = s.col_min;
            const int h = s.row_max - r_lo + 1, w = s.col_max - c_lo + 1;
            std::uint8_t* const xp = x.data();
            for (int r = 0; r < h; ++r) {
                const std::size_t row = static_cast<std::size_t>(r + r_lo) * W + c_lo;
                const std::int32_t* ANTEMA_RESTRICT l_row = lab.data() + row;
                std::uint8_t* ANTEMA_RESTRICT x_row = xp + row;
                for (int c = 0; c < w; ++c) {
                    if (l_row[c] == id) x_row[c] = 0;
                }
            }
            if (s.area > m) {
                Marker mk{std::vector<std::uint8_t>(static_cast<std::size_t>(h) * w, 0), k + 1,
                          r_lo, c_lo, h, w};
                std::uint8_t* const bp = mk.bitmap.data();
                for (int r = 0; r < h; ++r) {
                    const std::int32_t* ANTEMA_RESTRICT l_row =
                        lab.data() + static_cast<std::size_t>(r + r_lo) * W + c_lo;
                    std::uint8_t* ANTEMA_RESTRICT b_row = bp + static_cast<std::size_t>(r) * w;
                    for (int c = 0; c < w; ++c) b_row[c] = l_row[c] == id;
                }
                markers.push_back(std::move(mk));
            } else {
                out.dropped.push_back(detail::dropped_component(s, Reason::marker_too_small));
            }
        }
        if (eroded.empty()) break;
        erode(x.data(), t1.data(), rows, cols, square ? Element::square2 : Element::cross3);
        open_cross(t1.data(), y.data(), t2.data(), rows, cols);
        for (const std::int32_t id : eroded) {
            const ComponentStats& s = lr.stats[static_cast<std::size_t>(id - 1)];
            bool survives = false;
            for (int r = s.row_min; r <= s.row_max && !survives; ++r) {
                for (int c = s.col_min; c <= s.col_max; ++c) {
                    const std::size_t i = static_cast<std::size_t>(r) * W + c;
                    if (lab[i] == id && y[i]) {
                        survives = true;
                        break;
                    }
                }
            }
            if (!survives) {
                out.dropped.push_back(detail::dropped_component(s, Reason::marker_too_small));
            }
        }
        unchanged = (x == y) ? unchanged + 1 : 0;
        std::swap(e, y);
    }
    detail::RegrowScratch scratch;
    for (Marker& mk : markers) {
        Piece piece = detail::regrow(mk.bitmap, mk.r0, mk.c0, mk.h, mk.w, a.data(), rows, cols,
                                     mk.count, scratch);
        piece.erosions = mk.count;
        if (detail::image_convex(piece.bitmap.data(), piece.rows, piece.cols, p.threshold)) {
            out.particles.push_back(std::move(piece));
        } else {
            piece.bitmap.clear();
            piece.bitmap.shrink_to_fit();
            piece.reason = Reason::regrown_non_convex;
            out.dropped.push_back(std::move(piece));
        }
    }
    return out;
}

}  // namespace antema
