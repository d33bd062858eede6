// Shape measures of one particle: perimeter, convex image, convexity, solidity, Feret diameters.
//
// Definitions (SPEC section 2), all in pixel units:
//   perimeter         MATLAB's estimator on the 8-connected OUTER boundary (boundary.hpp). A
//                     mask made of several 8-connected pieces has the SUM of the pieces' outer
//                     perimeters. Holes do not count.
//   convex image      pixels whose centres lie strictly inside the convex hull of the pixels'
//                     edge midpoints (convex_hull.hpp). It always contains the particle; for a
//                     one-pixel-wide straight line it is the line itself.
//   convex perimeter  the perimeter (same estimator) of the convex image.
//   convexity         convex perimeter / perimeter. When both are 0 (a single pixel) it is 1.0:
//                     a pixel is convex. An empty mask gives NaN.
//   solidity          area / convex area (NaN for an empty mask).
//   Feret             rotating calipers on the hull of the pixel CORNERS (feret.hpp).
//
// Public API (namespace antema), on a single-object crop (row-major rows x cols, 0/nonzero):
//   double perimeter(const std::uint8_t* mask, int rows, int cols);
//   std::vector<std::uint8_t> convex_image(const std::uint8_t* mask, int rows, int cols);
//   ConvexStats convex_stats(const std::uint8_t* mask, int rows, int cols);
//   ShapeMeasures measure_shape(const std::uint8_t* mask, int rows, int cols);  // everything
// and, for callers that already know the components (a label image):
//   template <class Fg> ShapeGeometry shape_geometry(Fg fg, starts, row_first, row_last, feret);
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <utility>
#include <vector>

#include "boundary.hpp"
#include "convex_hull.hpp"
#include "feret.hpp"
#include "label.hpp"

namespace antema {

struct ConvexStats {
    double perimeter, convex_perimeter, convexity;
    std::int64_t area, convex_area;
    double solidity;
};

struct ShapeGeometry {
    double perimeter = 0.0;
    double convex_perimeter = 0.0;
    std::int64_t convex_area = 0;
    FeretResult feret;
    // True when shape_geometry stopped before the convex perimeter (left 0) because the
    // solidity alone already marks the set non-convex (see `solidity_exit_area`).
    bool low_solidity_exit = false;
};

// Perimeter of the convex image given as row intervals: each run of rows whose intervals touch
// (8-connected) is one piece; the pieces' outer perimeters are summed.
inline double convex_image_perimeter(const RowExtents& cr) {
    double total = 0.0;
    const int n = cr.size();
    int i = 0;
    while (i < n) {
        if (cr.empty_row(i)) {
            ++i;
            continue;
        }
        int j = i;
        while (j + 1 < n && !cr.empty_row(j + 1) &&
               cr.left[static_cast<std::size_t>(j + 1)] <= cr.right[static_cast<std::size_t>(j)] + 1 &&
               cr.left[static_cast<std::size_t>(j)] <= cr.right[static_cast<std::size_t>(j + 1)] + 1) {
            ++j;
        }
        const int lo = i, hi = j;
        auto fg = [&cr, lo, hi](int r, int c) {
            const int k = r - cr.row0;
            if (k < lo || k > hi) return false;
            return c >= cr.left[static_cast<std::size_t>(k)] && c <= cr.right[static_cast<std::size_t>(k)];
        };
        total += perimeter_of(
            trace_outer(fg, cr.row0 + lo, cr.left[static_cast<std::size_t>(lo)], [](int, int) {}));
        i = j + 1;
    }
    return total;
}

inline std::int64_t row_extents_area(const RowExtents& e) {
    std::int64_t a = 0;
    for (int i = 0; i < e.size(); ++i) {
        if (!e.empty_row(i)) {
            a += std::int64_t{e.right[static_cast<std::size_t>(i)]} - e.left[static_cast<std::size_t>(i)] + 1;
        }
    }
    return a;
}

// Geometry of the pixel set {fg(r, c)} made of the 8-connected pieces whose first pixels (raster
// order) are `starts`, all within rows row_first..row_last. fg must answer false outside.
// With solidity_exit_area = the set's area (> 0), the convex perimeter is skipped when
// 1 - area / convex_area >= 0.05 (UECS's test needs no convexity then); low_solidity_exit says so.
template <class Fg>
ShapeGeometry shape_geometry(Fg fg, const std::vector<std::pair<int, int>>& starts, int row_first,
                             int row_last, bool with_feret = true,
                             std::int64_t solidity_exit_area = 0) {
    ShapeGeometry g;
    if (starts.empty()) return g;
    // Per-thread scratch: a frame calls this for every area and every UECS component, and the
    // buffers would otherwise be allocated each time (the core runs with the GIL released, so
    // several threads may be in here at once; each has its own).
    struct Scratch {
        RowExtents ext, cr;
        std::vector<IPoint> pts, hull;
        std::vector<std::int64_t> lo, hi;
    };
    thread_local Scratch sc;
    RowExtents& ext = sc.ext;
    ext.reset(row_first, row_last - row_first + 1);
    for (const auto& s : starts) {
        g.perimeter += perimeter_of(trace_outer(fg, s.first, s.second, [&ext](int r, int c) { ext.add(r, c); }));
    }
    // The outer contour holds the leftmost and rightmost pixel of every row (their outer
    // neighbours belong to the outside), so the extents are those of the whole set.
    if (with_feret) g.feret = feret(corner_hull(ext));
    midpoint_hull_into(ext, sc.pts, sc.hull);
    convex_rows_into(sc.hull, row_first, row_last, sc.cr, sc.lo, sc.hi);
    g.convex_area = row_extents_area(sc.cr);
    if (solidity_exit_area > 0 && g.convex_area > 0 &&
        1.0 - static_cast<double>(solidity_exit_area) / static_cast<double>(g.convex_area) >= 0.05) {
        g.low_solidity_exit = true;
        return g;
    }
    g.convex_perimeter = convex_image_perimeter(sc.cr);
    return g;
}

inline double convexity_of(double perimeter, double convex_perimeter) {
    if (perimeter == 0.0 && convex_perimeter == 0.0) return 1.0;
    return convex_perimeter / perimeter;
}

struct ShapeMeasures {
    std::int64_t area = 0;
    std::int64_t holes = 0;  // holes of the 8-connected pieces, summed
    std::int32_t pieces = 0; // number of 8-connected pieces
    double sum_row = 0.0, sum_col = 0.0;
    std::int32_t row_min = -1, col_min = -1, row_max = -1, col_max = -1;
    ShapeGeometry geometry;
};

// Everything about the nonzero pixels of a crop (crop coordinates). Empty crop -> area 0.
inline ShapeMeasures measure_shape(const std::uint8_t* mask, int rows, int cols, bool with_feret = true) {
    ShapeMeasures out;
    const RunLabelling lab = label_runs(mask, rows, cols, 8);
    if (lab.result.count == 0) return out;
    std::vector<std::pair<int, int>> starts;
    starts.reserve(lab.result.stats.size());
    out.row_min = out.col_min = std::numeric_limits<std::int32_t>::max();
    for (const ComponentStats& s : lab.result.stats) {
        starts.emplace_back(s.first_row, s.first_col);
        out.area += s.area;
        out.holes += s.holes();
        out.sum_row += static_cast<double>(s.sum_row);
        out.sum_col += static_cast<double>(s.sum_col);
        out.row_min = std::min(out.row_min, s.row_min);
        out.col_min = std::min(out.col_min, s.col_min);
        out.row_max = std::max(out.row_max, s.row_max);
        out.col_max = std::max(out.col_max, s.col_max);
    }
    out.pieces = lab.result.count;
    auto fg = [mask, rows, cols](int r, int c) {
        return r >= 0 && c >= 0 && r < rows && c < cols &&
               mask[static_cast<std::size_t>(r) * static_cast<std::size_t>(cols) + static_cast<std::size_t>(c)] != 0;
    };
    out.geometry = shape_geometry(fg, starts, out.row_min, out.row_max, with_feret);
    return out;
}

inline double perimeter(const std::uint8_t* mask, int rows, int cols) {
    detail::check_image_size(rows, cols, "antema::perimeter");
    const RunLabelling lab = label_runs(mask, rows, cols, 8);
    auto fg = [mask, rows, cols](int r, int c) {
        return r >= 0 && c >= 0 && r < rows && c < cols &&
               mask[static_cast<std::size_t>(r) * static_cast<std::size_t>(cols) + static_cast<std::size_t>(c)] != 0;
    };
    double p = 0.0;
    for (const ComponentStats& s : lab.result.stats) {
        p += perimeter_of(trace_outer(fg, s.first_row, s.first_col, [](int, int) {}));
    }
    return p;
}

// Convex image (0/1, same shape as the crop). An empty crop gives all zeros.
inline std::vector<std::uint8_t> convex_image(const std::uint8_t* mask, int rows, int cols) {
    detail::check_image_size(rows, cols, "antema::convex_image");
    const std::size_t w = static_cast<std::size_t>(cols);
    std::vector<std::uint8_t> out(static_cast<std::size_t>(rows) * w, 0);
    RowExtents ext;
    ext.reset(0, rows);
    bool any = false;
    for (int r = 0; r < rows; ++r) {
        const std::uint8_t* m = mask + static_cast<std::size_t>(r) * w;
        int c0 = 0;
        while (c0 < cols && !m[c0]) ++c0;
        if (c0 == cols) continue;
        int c1 = cols - 1;
        while (!m[c1]) --c1;
        ext.add(r, c0);
        ext.add(r, c1);
        any = true;
    }
    if (!any) return out;
    const RowExtents cr = convex_rows(midpoint_hull(ext), 0, rows - 1);
    for (int r = 0; r < rows; ++r) {
        if (cr.empty_row(r)) continue;
        const int a = std::max(0, static_cast<int>(cr.left[static_cast<std::size_t>(r)]));
        const int b = std::min(cols - 1, static_cast<int>(cr.right[static_cast<std::size_t>(r)]));
        for (int c = a; c <= b; ++c) out[static_cast<std::size_t>(r) * w + static_cast<std::size_t>(c)] = 1;
    }
    return out;
}

// Perimeter, convex perimeter, convexity, area, convex area and solidity of a crop (no Feret).
// Empty crop: zeros, with convexity and solidity NaN.
inline ConvexStats convex_stats(const std::uint8_t* mask, int rows, int cols) {
    detail::check_image_size(rows, cols, "antema::convex_stats");
    const ShapeMeasures m = measure_shape(mask, rows, cols, /*with_feret=*/false);
    ConvexStats s{};
    s.area = m.area;
    s.perimeter = m.geometry.perimeter;
    s.convex_perimeter = m.geometry.convex_perimeter;
    s.convex_area = m.geometry.convex_area;
    if (m.area == 0) {
        s.convexity = std::numeric_limits<double>::quiet_NaN();
        s.solidity = std::numeric_limits<double>::quiet_NaN();
    } else {
        s.convexity = convexity_of(s.perimeter, s.convex_perimeter);
        s.solidity = static_cast<double>(s.area) / static_cast<double>(s.convex_area);
    }
    return s;
}

}  // namespace antema
