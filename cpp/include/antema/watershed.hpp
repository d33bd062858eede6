// Watershed separation of one area (SPEC section 3, "Watershed").
//
//   1. Exact Euclidean distance transform of the area to the nearest background pixel, with
//      everything outside the crop counted as background (Felzenszwalb & Huttenlocher, "Distance
//      transforms of sampled functions", Theory of Computing 8 (2012) 415: two passes of the
//      lower envelope of parabolas on integer squared distances).
//   2. Markers: the extended maxima of the distance with h = 2 px, i.e. the regional maxima
//      (8-connected plateaus without a higher neighbour) of the h-maxima transform, itself the
//      morphological reconstruction by dilation of D - h under D (Soille, Morphological Image
//      Analysis, 2003, ch. 6), restricted to the area. These are the extended minima of -D.
//   3. Marker-controlled flooding of -D inside the area (Meyer's priority-queue algorithm, 8-
//      connected, ties broken first-in first-out so that results are deterministic). A pixel
//      whose already-labelled neighbours carry two different labels becomes a watershed line and
//      belongs to no particle ("watershed lines removed"), so no two particles touch.
//
// Public API (namespace antema):
//   SeparationResult watershed(const uint8_t* area, int rows, int cols, double h = 2.0);
// Each basin is one particle (Piece with bitmap); coordinates relative to the crop.
#pragma once

#include <algorithm>
#include <cmath>
#include <functional>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <queue>
#include <stdexcept>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "uecs.hpp"

namespace antema {

namespace detail {

// 1-D squared distance transform of f (n samples, stride-free) into d; v, z scratch.
inline void edt_1d(const double* f, double* d, int n, std::vector<int>& v, std::vector<double>& z) {
    const double inf = std::numeric_limits<double>::infinity();
    v.resize(static_cast<std::size_t>(n));
    z.resize(static_cast<std::size_t>(n) + 1);
    int k = -1;
    for (int q = 0; q < n; ++q) {
        if (f[q] == inf) continue;
        if (k < 0) {
            k = 0;
            v[0] = q;
            z[0] = -inf;
            z[1] = inf;
            continue;
        }
        double s;
        while (true) {  // z[0] = -inf ends the loop at k = 0 at the latest
            const int p = v[static_cast<std::size_t>(k)];
            s = ((f[q] + double(q) * q) - (f[p] + double(p) * p)) / (2.0 * q - 2.0 * p);
            if (s > z[static_cast<std::size_t>(k)]) break;
            --k;
        }
        ++k;
        v[static_cast<std::size_t>(k)] = q;
        z[static_cast<std::size_t>(k)] = s;
        z[static_cast<std::size_t>(k) + 1] = inf;
    }
    if (k < 0) {
        for (int q = 0; q < n; ++q) d[q] = inf;
        return;
    }
    int j = 0;
    for (int q = 0; q < n; ++q) {
        while (z[static_cast<std::size_t>(j) + 1] < q) ++j;
        const int p = v[static_cast<std::size_t>(j)];
        d[q] = double(q - p) * double(q - p) + f[p];
    }
}

// Euclidean distance of every pixel of a padded (rows+2) x (cols+2) copy of the area to the
// nearest background pixel; returned for the unpadded crop.
inline std::vector<double> distance_transform(const std::uint8_t* area, int rows, int cols) {
    const int H = rows + 2, W = cols + 2;
    const double inf = std::numeric_limits<double>::infinity();
    std::vector<double> g(static_cast<std::size_t>(H) * W, 0.0);
    for (int r = 0; r < rows; ++r) {
        for (int c = 0; c < cols; ++c) {
            if (area[static_cast<std::size_t>(r) * cols + c]) {
                g[static_cast<std::size_t>(r + 1) * W + (c + 1)] = inf;
            }
        }
    }
    std::vector<int> v;
    std::vector<double> z, f(static_cast<std::size_t>(std::max(H, W))),
        d(static_cast<std::size_t>(std::max(H, W)));
    for (int c = 0; c < W; ++c) {  // columns
        for (int r = 0; r < H; ++r) f[static_cast<std::size_t>(r)] = g[static_cast<std::size_t>(r) * W + c];
        edt_1d(f.data(), d.data(), H, v, z);
        for (int r = 0; r < H; ++r) g[static_cast<std::size_t>(r) * W + c] = d[static_cast<std::size_t>(r)];
    }
    for (int r = 0; r < H; ++r) {  // rows
        double* row = g.data() + static_cast<std::size_t>(r) * W;
        for (int c = 0; c < W; ++c) f[static_cast<std::size_t>(c)] = row[c];
        edt_1d(f.data(), row, W, v, z);
    }
    std::vector<double> out(static_cast<std::size_t>(rows) * cols, 0.0);
    for (int r = 0; r < rows; ++r) {
        for (int c = 0; c < cols; ++c) {
            out[static_cast<std::size_t>(r) * cols + c] =
                std::sqrt(g[static_cast<std::size_t>(r + 1) * W + (c + 1)]);
        }
    }
    return out;
}

constexpr int kWsDr[8] = {-1, -1, -1, 0, 0, 1, 1, 1};
constexpr int kWsDc[8] = {-1, 0, 1, -1, 1, -1, 0, 1};

}  // namespace detail

inline SeparationResult watershed(const std::uint8_t* area, int rows, int cols, double h = 2.0) {
    if (rows < 0 || cols < 0) {
        throw std::invalid_argument("antema::watershed: expected non-negative sizes, got " +
                                    std::to_string(rows) + " x " + std::to_string(cols));
    }
    if (!(h >= 0.0) || !std::isfinite(h)) {
        throw std::invalid_argument("antema::watershed: expected h >= 0, got " + std::to_string(h));
    }
    SeparationResult out;
    const std::size_t n = static_cast<std::size_t>(rows) * static_cast<std::size_t>(cols);
    if (n == 0) return out;
    const std::vector<double> dist = detail::distance_transform(area, rows, cols);
    auto inside = [area, rows, cols](int r, int c) {
        return r >= 0 && c >= 0 && r < rows && c < cols &&
               area[static_cast<std::size_t>(r) * cols + c] != 0;
    };

    // h-maxima: reconstruction by dilation of D - h under D, inside the area.
    std::vector<double> rec(n, -std::numeric_limits<double>::infinity());
    using Item = std::pair<double, std::size_t>;
    std::priority_queue<Item> maxq;
    for (std::size_t i = 0; i < n; ++i) {
        if (area[i]) {
            rec[i] = dist[i] - h;
            maxq.emplace(rec[i], i);
        }
    }
    while (!maxq.empty()) {
        const auto [val, i] = maxq.top();
        maxq.pop();
        if (val < rec[i]) continue;  // stale entry
        const int r = static_cast<int>(i / cols), c = static_cast<int>(i % cols);
        for (int k = 0; k < 8; ++k) {
            const int rr = r + detail::kWsDr[k], cc = c + detail::kWsDc[k];
            if (!inside(rr, cc)) continue;
            const std::size_t j = static_cast<std::size_t>(rr) * cols + cc;
            const double v = std::min(val, dist[j]);
            if (v > rec[j]) {
                rec[j] = v;
                maxq.emplace(v, j);
            }
        }
    }

    // Regional maxima of rec: 8-connected plateaus with no higher neighbour in the area.
    std::vector<std::int32_t> lab(n, 0);  // > 0 basin, -1 line, 0 unlabelled
    std::vector<std::uint8_t> seen(n, 0);
    std::vector<std::size_t> plateau, stack;
    std::int32_t nmark = 0;
    for (std::size_t i0 = 0; i0 < n; ++i0) {
        if (!area[i0] || seen[i0]) continue;
        const double v0 = rec[i0];
        plateau.clear();
        stack.assign(1, i0);
        seen[i0] = 1;
        bool is_max = true;
        while (!stack.empty()) {
            const std::size_t i = stack.back();
            stack.pop_back();
            plateau.push_back(i);
            const int r = static_cast<int>(i / cols), c = static_cast<int>(i % cols);
            for (int k = 0; k < 8; ++k) {
                const int rr = r + detail::kWsDr[k], cc = c + detail::kWsDc[k];
                if (!inside(rr, cc)) continue;
                const std::size_t j = static_cast<std::size_t>(rr) * cols + cc;
                if (rec[j] > v0) {
                    is_max = false;
                } else if (rec[j] == v0 && !seen[j]) {
                    seen[j] = 1;
                    stack.push_back(j);
                }
            }
        }
        if (is_max) {
            ++nmark;
            for (const std::size_t i : plateau) lab[i] = nmark;
        }
    }

    // Flooding of -D from the markers, lowest first, FIFO among equals.
    using FItem = std::tuple<double, std::uint64_t, std::size_t>;
    std::priority_queue<FItem, std::vector<FItem>, std::greater<FItem>> q;
    std::vector<std::uint8_t> queued(n, 0);
    std::uint64_t age = 0;
    auto push_neighbours = [&](std::size_t i) {
        const int r = static_cast<int>(i / cols), c = static_cast<int>(i % cols);
        for (int k = 0; k < 8; ++k) {
            const int rr = r + detail::kWsDr[k], cc = c + detail::kWsDc[k];
            if (!inside(rr, cc)) continue;
            const std::size_t j = static_cast<std::size_t>(rr) * cols + cc;
            if (lab[j] != 0 || queued[j]) continue;
            queued[j] = 1;
            q.emplace(-dist[j], age++, j);
        }
    };
    for (std::size_t i = 0; i < n; ++i) {
        if (lab[i] > 0) push_neighbours(i);
    }
    while (!q.empty()) {
        const std::size_t i = std::get<2>(q.top());
        q.pop();
        const int r = static_cast<int>(i / cols), c = static_cast<int>(i % cols);
        std::int32_t l = 0;
        bool line = false;
        for (int k = 0; k < 8; ++k) {
            const int rr = r + detail::kWsDr[k], cc = c + detail::kWsDc[k];
            if (!inside(rr, cc)) continue;
            const std::int32_t lj = lab[static_cast<std::size_t>(rr) * cols + cc];
            if (lj <= 0) continue;
            if (l == 0) {
                l = lj;
            } else if (lj != l) {
                line = true;
            }
        }
        if (line || l == 0) {
            lab[i] = -1;
            continue;
        }
        lab[i] = l;
        push_neighbours(i);
    }

    // Basins -> particles (bounding boxes first, then one copy per basin).
    std::vector<int> r0(static_cast<std::size_t>(nmark) + 1, rows), c0(r0.size(), cols),
        r1(r0.size(), -1), c1(r0.size(), -1);
    std::vector<std::int64_t> count(r0.size(), 0);
    for (int r = 0; r < rows; ++r) {
        for (int c = 0; c < cols; ++c) {
            const std::int32_t l = lab[static_cast<std::size_t>(r) * cols + c];
            if (l <= 0) continue;
            const auto u = static_cast<std::size_t>(l);
            r0[u] = std::min(r0[u], r);
            r1[u] = std::max(r1[u], r);
            c0[u] = std::min(c0[u], c);
            c1[u] = std::max(c1[u], c);
            ++count[u];
        }
    }
    for (std::int32_t id = 1; id <= nmark; ++id) {
        const auto u = static_cast<std::size_t>(id);
        if (count[u] == 0) continue;
        Piece p;
        p.row0 = r0[u];
        p.col0 = c0[u];
        p.rows = r1[u] - r0[u] + 1;
        p.cols = c1[u] - c0[u] + 1;
        p.area = count[u];
        p.bitmap.assign(static_cast<std::size_t>(p.rows) * p.cols, 0);
        for (int r = r0[u]; r <= r1[u]; ++r) {
            for (int c = c0[u]; c <= c1[u]; ++c) {
                if (lab[static_cast<std::size_t>(r) * cols + c] == id) {
                    p.bitmap[static_cast<std::size_t>(r - r0[u]) * p.cols + (c - c0[u])] = 1;
                }
            }
        }
        out.particles.push_back(std::move(p));
    }
    return out;
}

}  // namespace antema
