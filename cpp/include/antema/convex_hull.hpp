// Exact convex hulls of pixel sets on integer coordinates, and the convex image.
//
// Hulls are built with Andrew's monotone chain (Inf. Process. Lett. 9 (1979) 216) on points that
// are already sorted, in O(n), with int64 orientation tests, so they are exact. Collinear points
// are dropped: the hull lists only its corners.
//
// Two hulls are used, both built from the per-row extents (leftmost and rightmost pixel of each
// row), which carry every point that can be a hull vertex:
//   * the hull of the pixel CORNERS, for the Feret diameters. Corner (i, j) is the point
//     (i - 1/2, j - 1/2) in pixel coordinates, so integer corner indices are exact; a set of one
//     pixel already has a 4-corner hull, so the hull is never degenerate.
//   * the hull of the pixel EDGE MIDPOINTS, in doubled coordinates (the point (Y, X) is the pixel
//     position (Y/2, X/2)), for the convex image: pixels whose centres (2r, 2c) lie STRICTLY
//     inside it (MATLAB's ConvexImage convention of SPEC section 2; a centre on the hull does
//     not count). Every pixel of the set is strictly inside, so the convex image contains the set.
//
// Public API (namespace antema):
//   struct RowExtents  -- first row and, per row, [left, right] (left > right for an empty row)
//   std::vector<IPoint> corner_hull(const RowExtents&);
//   std::vector<IPoint> midpoint_hull(const RowExtents&);       // doubled coordinates
//   RowExtents convex_rows(const std::vector<IPoint>& midpoint_hull, int row_first, int row_last);
//   Points are (y = row, x = col); hulls are counter-clockwise in the (y, x) frame, that is
//   cross(v[i+1] - v[i], p - v[i]) > 0 for p strictly inside.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <stdexcept>
#include <vector>

namespace antema {

struct IPoint {
    std::int64_t y;  // row direction
    std::int64_t x;  // column direction
};

inline std::int64_t cross(const IPoint& o, const IPoint& a, const IPoint& b) {
    return (a.y - o.y) * (b.x - o.x) - (a.x - o.x) * (b.y - o.y);
}

struct RowExtents {
    int row0 = 0;                     // row of left[0]
    std::vector<std::int32_t> left;   // leftmost column per row (INT32_MAX if the row is empty)
    std::vector<std::int32_t> right;  // rightmost column per row (-1 ... INT32_MIN if empty)

    void reset(int first_row, int n_rows) {
        row0 = first_row;
        left.assign(static_cast<std::size_t>(n_rows), std::numeric_limits<std::int32_t>::max());
        right.assign(static_cast<std::size_t>(n_rows), std::numeric_limits<std::int32_t>::min());
    }
    int size() const { return static_cast<int>(left.size()); }
    bool empty_row(int i) const { return left[static_cast<std::size_t>(i)] > right[static_cast<std::size_t>(i)]; }
    void add(int r, int c) {
        const auto i = static_cast<std::size_t>(r - row0);
        if (c < left[i]) left[i] = c;
        if (c > right[i]) right[i] = c;
    }
};

// Monotone chain on points sorted by (y, x) without duplicates, into `h` (reused buffer).
// The hull is counter-clockwise in the (y, x) frame, without collinear points.
inline void hull_of_sorted_into(const std::vector<IPoint>& p, std::vector<IPoint>& h) {
    const std::size_t n = p.size();
    if (n < 3) {
        h.assign(p.begin(), p.end());
        return;
    }
    h.resize(2 * n);
    IPoint* const hp = h.data();
    const IPoint* const pp = p.data();
    std::size_t k = 0;
    for (std::size_t i = 0; i < n; ++i) {
        while (k >= 2 && cross(hp[k - 2], hp[k - 1], pp[i]) <= 0) --k;
        hp[k++] = pp[i];
    }
    const std::size_t lower = k + 1;
    for (std::size_t i = n - 1; i-- > 0;) {
        while (k >= lower && cross(hp[k - 2], hp[k - 1], pp[i]) <= 0) --k;
        hp[k++] = pp[i];
    }
    h.resize(k - 1);
}

inline std::vector<IPoint> hull_of_sorted(const std::vector<IPoint>& p) {
    std::vector<IPoint> h;
    hull_of_sorted_into(p, h);
    return h;
}

// Hull of the pixel corners of a set given by its row extents. Throws if the set is empty.
inline std::vector<IPoint> corner_hull(const RowExtents& e) {
    std::vector<IPoint> pts;
    pts.reserve(static_cast<std::size_t>(2 * e.size() + 2));
    // Corner row y (y = row0 .. row0 + n) touches pixel rows y - 1 and y.
    for (int i = 0; i <= e.size(); ++i) {
        std::int64_t lo = std::numeric_limits<std::int64_t>::max();
        std::int64_t hi = std::numeric_limits<std::int64_t>::min();
        for (int j = i - 1; j <= i; ++j) {
            if (j < 0 || j >= e.size() || e.empty_row(j)) continue;
            lo = std::min<std::int64_t>(lo, e.left[static_cast<std::size_t>(j)]);
            hi = std::max<std::int64_t>(hi, e.right[static_cast<std::size_t>(j)] + 1);
        }
        if (lo > hi) continue;
        const std::int64_t y = e.row0 + i;
        pts.push_back({y, lo});
        pts.push_back({y, hi});  // hi > lo always (a pixel is one unit wide)
    }
    if (pts.empty()) throw std::invalid_argument("antema::corner_hull: expected a non-empty pixel set");
    return hull_of_sorted(pts);
}

// Hull of the pixel edge midpoints, doubled coordinates, into `hull`; `pts` is a scratch
// buffer. Throws if the set is empty.
inline void midpoint_hull_into(const RowExtents& e, std::vector<IPoint>& pts,
                               std::vector<IPoint>& hull) {
    const int n = e.size();
    pts.resize(static_cast<std::size_t>(4 * n + 4));
    IPoint* const out = pts.data();
    std::size_t k = 0;
    const std::int32_t* const L = e.left.data();
    const std::int32_t* const R = e.right.data();
    for (int i = -1; i < n; ++i) {
        // Odd doubled row 2r+1 between pixel rows r = row0 + i and r + 1: bottom midpoints of
        // row r and top midpoints of row r + 1.
        const bool has_i = i >= 0 && L[i] <= R[i];
        const bool has_next = i + 1 < n && L[i + 1] <= R[i + 1];
        if (!has_i && !has_next) continue;
        std::int64_t lo = std::numeric_limits<std::int64_t>::max();
        std::int64_t hi = std::numeric_limits<std::int64_t>::min();
        if (has_i) {
            lo = 2 * std::int64_t{L[i]};
            hi = 2 * std::int64_t{R[i]};
            // Even doubled row 2r of pixel row r (left and right edge midpoints) goes before
            // the odd row 2r + 1 to keep the (y, x) order; the two differ (width >= 2).
            const std::int64_t yr = 2 * (std::int64_t{e.row0} + i);
            out[k++] = {yr, lo - 1};
            out[k++] = {yr, hi + 1};
        }
        if (has_next) {
            lo = std::min(lo, 2 * std::int64_t{L[i + 1]});
            hi = std::max(hi, 2 * std::int64_t{R[i + 1]});
        }
        const std::int64_t y = 2 * (std::int64_t{e.row0} + i) + 1;
        out[k++] = {y, lo};
        if (hi != lo) out[k++] = {y, hi};
    }
    if (k == 0) throw std::invalid_argument("antema::midpoint_hull: expected a non-empty pixel set");
    pts.resize(k);
    hull_of_sorted_into(pts, hull);
}

inline std::vector<IPoint> midpoint_hull(const RowExtents& e) {
    std::vector<IPoint> pts, hull;
    midpoint_hull_into(e, pts, hull);
    return hull;
}

namespace detail {
inline std::int64_t floor_div(std::int64_t a, std::int64_t b) {  // b > 0
    std::int64_t q = a / b;
    if ((a % b != 0) && (a < 0)) --q;
    return q;
}
}  // namespace detail

// Convex image as row intervals: for rows row_first..row_last, the columns c whose centre
// (2r, 2c) lies strictly inside the midpoint hull (doubled coordinates, counter-clockwise).
// The slice of a convex polygon at height y is bounded by the edges whose span contains y, so
// each edge constrains only the rows it spans: O(rows + hull size), exact integer arithmetic.
inline void convex_rows_into(const std::vector<IPoint>& h, int row_first, int row_last,
                             RowExtents& out, std::vector<std::int64_t>& lo,
                             std::vector<std::int64_t>& hi) {
    const int n_rows = row_last - row_first + 1;
    out.reset(row_first, n_rows < 0 ? 0 : n_rows);
    const std::size_t m = h.size();
    if (m < 3 || n_rows <= 0) return;
    std::int64_t ymin = h[0].y, ymax = h[0].y;
    for (const IPoint& p : h) {
        ymin = std::min(ymin, p.y);
        ymax = std::max(ymax, p.y);
    }
    lo.assign(static_cast<std::size_t>(n_rows), std::numeric_limits<std::int32_t>::min());
    hi.assign(static_cast<std::size_t>(n_rows), std::numeric_limits<std::int32_t>::max());
    const std::int64_t y_first = 2 * std::int64_t{row_first};
    for (std::size_t k = 0; k < m; ++k) {
        const IPoint& v = h[k];
        const IPoint& w = h[(k + 1) % m];
        const std::int64_t ey = w.y - v.y, ex = w.x - v.x;
        if (ey == 0) continue;  // a horizontal edge lies at ymin or ymax: those rows are empty
        // pixel rows whose centre height 2r lies in the edge's span, strictly inside (ymin, ymax)
        const std::int64_t ya = std::max(std::min(v.y, w.y), ymin + 1);
        const std::int64_t yb = std::min(std::max(v.y, w.y), ymax - 1);
        std::int64_t r0 = ya - y_first;  // doubled offset from the first row's centre
        r0 = r0 <= 0 ? 0 : (r0 + 1) / 2;
        std::int64_t r1 = yb - y_first;
        if (r1 < 0) continue;
        r1 = std::min<std::int64_t>(r1 / 2, n_rows - 1);
        for (std::int64_t i = r0; i <= r1; ++i) {
            const std::int64_t y = y_first + 2 * i;
            // inside: ey * (x - v.x) - ex * (y - v.y) > 0  <=>  ey * x > nn, with x = 2c
            const std::int64_t nn = ey * v.x + ex * (y - v.y);
            const auto ii = static_cast<std::size_t>(i);
            if (ey > 0) {  // c > nn / (2 ey)
                lo[ii] = std::max(lo[ii], detail::floor_div(nn, 2 * ey) + 1);
            } else {  // c < -nn / (2 |ey|)  ->  c <= ceil(-nn / (2 |ey|)) - 1
                hi[ii] = std::min(hi[ii], -detail::floor_div(nn, 2 * (-ey)) - 1);
            }
        }
    }
    for (int i = 0; i < n_rows; ++i) {
        const std::int64_t y = y_first + 2 * std::int64_t{i};
        const auto ii = static_cast<std::size_t>(i);
        if (y <= ymin || y >= ymax || lo[ii] > hi[ii]) continue;
        out.left[ii] = static_cast<std::int32_t>(lo[ii]);
        out.right[ii] = static_cast<std::int32_t>(hi[ii]);
    }
}

inline RowExtents convex_rows(const std::vector<IPoint>& h, int row_first, int row_last) {
    RowExtents out;
    std::vector<std::int64_t> lo, hi;
    convex_rows_into(h, row_first, row_last, out, lo, hi);
    return out;
}

}  // namespace antema
