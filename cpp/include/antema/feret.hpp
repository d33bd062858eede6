// Feret (caliper) diameters of a convex polygon with integer vertices, by exact rotating calipers
// (Shamos, Computational Geometry, PhD thesis, Yale 1978; Toussaint, Proc. IEEE MELECON 1983).
//
// * Maximum Feret diameter: the largest distance between two hull vertices. The calipers visit
//   every antipodal vertex pair (both pairs of a parallel edge pair included); squared distances
//   are compared in int64, so the maximum is exact.
// * Minimum Feret diameter (caliper width): the minimum over hull edges of the largest distance
//   of a vertex to that edge's line, compared exactly as cross^2 / |edge|^2 in 128-bit integers.
// * Angles: direction (dy = rows, dx = columns) -> atan2(-dy, dx), counter-clockwise from the
//   +column axis as seen with row 0 at the top, folded into [0, 180). The minimum's angle is the
//   caliper direction (perpendicular to the supporting edge). Ties (equal exact lengths) resolve
//   to the smallest angle, so a square gives 45 deg for the maximum and 0 deg for the minimum.
//
// Public API (namespace antema):
//   FeretResult feret(const std::vector<IPoint>& hull);  // counter-clockwise, no collinear points
//   Units are those of the hull coordinates (pixel corners: pixels). Defined for every hull:
//   one point -> all 0; two points -> max = their distance, min = 0.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "convex_hull.hpp"

namespace antema {

struct FeretResult {
    double max = 0.0;
    double max_angle_deg = 0.0;
    double min = 0.0;
    double min_angle_deg = 0.0;
};

inline double direction_angle_deg(std::int64_t dy, std::int64_t dx) {
    constexpr double kPi = 3.14159265358979323846;
    double a = std::atan2(-static_cast<double>(dy), static_cast<double>(dx)) * (180.0 / kPi);
    if (a < 0.0) a += 180.0;
    if (a >= 180.0) a -= 180.0;
    return a + 0.0;  // no negative zero
}

namespace detail {
#if defined(__SIZEOF_INT128__)
using wide_int = __int128;
#else
using wide_int = long double;  // exact enough for hull coordinates below 2^20
#endif
}  // namespace detail

inline FeretResult feret(const std::vector<IPoint>& h) {
    FeretResult out;
    const std::size_t m = h.size();
    if (m < 2) return out;
    if (m == 2) {
        const std::int64_t dy = h[1].y - h[0].y, dx = h[1].x - h[0].x;
        out.max = std::sqrt(static_cast<double>(dy * dy + dx * dx));
        out.max_angle_deg = direction_angle_deg(dy, dx);
        out.min = 0.0;
        out.min_angle_deg = direction_angle_deg(-dx, dy);
        return out;
    }

    // Angles are computed only for a new best or a tie (atan2 is the costly part).
    std::int64_t best_d2 = -1;
    auto consider = [&](std::size_t a, std::size_t b) {
        const std::int64_t dy = h[b].y - h[a].y, dx = h[b].x - h[a].x;
        const std::int64_t d2 = dy * dy + dx * dx;
        if (d2 > best_d2) {
            best_d2 = d2;
            out.max_angle_deg = direction_angle_deg(dy, dx);
        } else if (d2 == best_d2) {
            const double ang = direction_angle_deg(dy, dx);
            if (ang < out.max_angle_deg) out.max_angle_deg = ang;
        }
    };

    // Minimum width, kept as the exact fraction best_c^2 / best_l.
    std::int64_t best_c = -1, best_l = 1;
    std::size_t j = 1;
    for (std::size_t i = 0; i < m; ++i) {
        const std::size_t i1 = i + 1 == m ? 0 : i + 1;
        auto area = [&](std::size_t k) { return cross(h[i], h[i1], h[k]); };
        std::size_t jn = j + 1 == m ? 0 : j + 1;
        std::int64_t aj = area(j), ajn = area(jn);
        while (ajn > aj) {
            j = jn;
            aj = ajn;
            jn = j + 1 == m ? 0 : j + 1;
            ajn = area(jn);
        }
        consider(i, j);
        consider(i1, j);
        if (ajn == aj) {  // edge j -> jn parallel to edge i -> i1
            consider(i, jn);
            consider(i1, jn);
        }
        const std::int64_t c = aj;
        const std::int64_t ey = h[i1].y - h[i].y, ex = h[i1].x - h[i].x;
        const std::int64_t l = ey * ey + ex * ex;
        if (best_c < 0) {
            best_c = c;
            best_l = l;
            out.min_angle_deg = direction_angle_deg(-ex, ey);  // caliper: perpendicular to the edge
            continue;
        }
        const detail::wide_int lhs = static_cast<detail::wide_int>(c) * c * best_l;
        const detail::wide_int rhs = static_cast<detail::wide_int>(best_c) * best_c * l;
        if (lhs < rhs) {
            best_c = c;
            best_l = l;
            out.min_angle_deg = direction_angle_deg(-ex, ey);
        } else if (lhs == rhs) {
            const double ang = direction_angle_deg(-ex, ey);
            if (ang < out.min_angle_deg) out.min_angle_deg = ang;
        }
    }
    out.max = std::sqrt(static_cast<double>(best_d2));
    out.min = static_cast<double>(best_c) / std::sqrt(static_cast<double>(best_l));
    return out;
}

}  // namespace antema
