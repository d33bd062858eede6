// Connected-component labelling of a binary mask, with per-label statistics.
//
// Algorithm: classic two-pass labelling (Rosenfeld & Pfaltz, J. ACM 13 (1966) 471) with a
// union-find equivalence table whose roots are always the smallest provisional label
// (Wu, Otoo & Suzuki, Pattern Anal. Appl. 12 (2009) 117: scan with a decision tree over the
// already-visited neighbours, so that a pixel whose north neighbour is set needs no union).
// Because provisional labels are handed out in raster order and a root is the smallest label
// of its tree, final labels 1..n are numbered in raster order of each component's first pixel.
//
// Statistics (area, bounding box, centroid sums, border contact, first pixel, Euler number) are
// gathered in the relabelling pass. The Euler number of each component is counted from 2x2
// bit-quads (Gray, IEEE Trans. Comput. C-20 (1971) 551), per component, so that the number of
// holes is 1 - euler. The image is treated as surrounded by background.
//
// Public API (namespace antema):
//   LabelResult label_into(const std::uint8_t* mask, int rows, int cols, int connectivity,
//                          std::int32_t* labels);
//       mask: row-major rows x cols, 0 = background, anything else = foreground.
//       connectivity: 4 or 8. labels: caller-owned output buffer of rows*cols int32
//       (0 = background, 1..count = components). Returns the count and per-label statistics
//       (stats[i] describes label i + 1).
//   Labelled label(const std::uint8_t* mask, int rows, int cols, int connectivity = 8);
//       The same, allocating the label image (Labelled::labels).
// Throws std::invalid_argument (bad sizes or connectivity) and std::overflow_error (more
// provisional labels than int32 can hold).
#pragma once

#include <cstddef>
#include <cstdint>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

namespace antema {

struct ComponentStats {
    std::int64_t area = 0;
    std::int32_t row_min = std::numeric_limits<std::int32_t>::max();
    std::int32_t col_min = std::numeric_limits<std::int32_t>::max();
    std::int32_t row_max = -1;
    std::int32_t col_max = -1;
    std::int64_t sum_row = 0;  // sum of the pixel rows (centroid row = sum_row / area)
    std::int64_t sum_col = 0;  // sum of the pixel columns
    std::int32_t first_row = -1;  // first pixel in raster order (topmost, then leftmost)
    std::int32_t first_col = -1;
    bool touches_border = false;
    std::int64_t euler = 0;  // Euler number with the labelling connectivity: 1 - holes

    std::int64_t holes() const { return 1 - euler; }
};

struct LabelResult {
    std::int32_t count = 0;
    std::vector<ComponentStats> stats;  // stats[i] describes label i + 1
};

struct Labelled {
    std::vector<std::int32_t> labels;  // rows * cols, row-major
    LabelResult result;
};

namespace detail {

inline void check_image_size(int rows, int cols, const char* who) {
    if (rows < 0 || cols < 0) {
        throw std::invalid_argument(std::string(who) + ": expected non-negative image sizes, got " +
                                    std::to_string(rows) + " x " + std::to_string(cols));
    }
}

// Union-find over provisional labels; parent[0] is unused. Roots are the smallest label.
class Equivalences {
public:
    Equivalences() { parent_.reserve(1024); parent_.push_back(0); }

    std::int32_t make() {
        if (parent_.size() >= static_cast<std::size_t>(std::numeric_limits<std::int32_t>::max())) {
            throw std::overflow_error(
                "antema::label: more provisional labels than an int32 label image can hold");
        }
        const auto l = static_cast<std::int32_t>(parent_.size());
        parent_.push_back(l);
        return l;
    }

    std::int32_t find(std::int32_t l) {
        while (parent_[l] != l) {
            parent_[l] = parent_[parent_[l]];
            l = parent_[l];
        }
        return l;
    }

    // Joins the trees of a and b; returns the root (the smaller of the two roots).
    std::int32_t unite(std::int32_t a, std::int32_t b) {
        a = find(a);
        b = find(b);
        if (a == b) return a;
        if (a < b) {
            parent_[b] = a;
            return a;
        }
        parent_[a] = b;
        return b;
    }

    // Maps every provisional label to its final label (1..count in order of the roots).
    std::int32_t flatten(std::vector<std::int32_t>& final_of) {
        final_of.assign(parent_.size(), 0);
        std::int32_t count = 0;
        for (std::size_t l = 1; l < parent_.size(); ++l) {
            const std::int32_t p = parent_[l];
            if (p == static_cast<std::int32_t>(l)) {
                final_of[l] = ++count;
            } else {
                // p < l, so final_of[p] is already known; roots are the smallest labels.
                final_of[l] = final_of[p];
                parent_[l] = parent_[p];
            }
        }
        return count;
    }

private:
    std::vector<std::int32_t> parent_;
};

// Adds 4 x (Euler contribution) of the 2x2 quad with labels a b / d e for each label in it.
// eight: true for 8-connectivity (E = (Q1 - Q3 - 2 QD) / 4), false for 4 (E = (Q1 - Q3 + 2 QD) / 4).
inline void euler_quad(std::int32_t a, std::int32_t b, std::int32_t d, std::int32_t e, bool eight,
                       std::vector<std::int64_t>& euler4) {
    const std::int32_t q[4] = {a, b, d, e};
    for (int i = 0; i < 4; ++i) {
        const std::int32_t x = q[i];
        if (x == 0) continue;
        bool seen = false;
        for (int k = 0; k < i; ++k) seen = seen || (q[k] == x);
        if (seen) continue;
        const int ba = a == x, bb = b == x, bd = d == x, be = e == x;
        const int n = ba + bb + bd + be;
        if (n == 1) {
            euler4[x] += 1;
        } else if (n == 3) {
            euler4[x] -= 1;
        } else if (n == 2 && ((ba && be) || (bb && bd))) {
            euler4[x] += eight ? -2 : 2;
        }
    }
}

}  // namespace detail

inline LabelResult label_into(const std::uint8_t* mask, int rows, int cols, int connectivity,
                              std::int32_t* labels) {
    detail::check_image_size(rows, cols, "antema::label");
    if (connectivity != 4 && connectivity != 8) {
        throw std::invalid_argument("antema::label: expected connectivity 4 or 8, got " +
                                    std::to_string(connectivity));
    }
    LabelResult out;
    if (rows == 0 || cols == 0) return out;
    const bool eight = connectivity == 8;
    const std::size_t w = static_cast<std::size_t>(cols);
    detail::Equivalences eq;

    // Pass 1: provisional labels.
    for (int r = 0; r < rows; ++r) {
        const std::uint8_t* m = mask + static_cast<std::size_t>(r) * w;
        std::int32_t* l = labels + static_cast<std::size_t>(r) * w;
        const std::int32_t* up = r > 0 ? l - w : nullptr;
        for (int c = 0; c < cols; ++c) {
            if (!m[c]) {
                l[c] = 0;
                continue;
            }
            const std::int32_t n = up ? up[c] : 0;
            const std::int32_t west = c > 0 ? l[c - 1] : 0;
            if (!eight) {
                if (n && west) {
                    l[c] = n == west ? n : eq.unite(n, west);
                } else if (n) {
                    l[c] = n;
                } else if (west) {
                    l[c] = west;
                } else {
                    l[c] = eq.make();
                }
                continue;
            }
            if (n) {  // N touches W, NW and NE: nothing to join
                l[c] = n;
                continue;
            }
            const std::int32_t ne = (up && c + 1 < cols) ? up[c + 1] : 0;
            const std::int32_t nw = (up && c > 0) ? up[c - 1] : 0;
            if (ne) {
                if (west) {
                    l[c] = ne == west ? ne : eq.unite(ne, west);
                } else if (nw) {
                    l[c] = ne == nw ? ne : eq.unite(ne, nw);
                } else {
                    l[c] = ne;
                }
            } else if (west) {
                l[c] = west;
            } else if (nw) {
                l[c] = nw;
            } else {
                l[c] = eq.make();
            }
        }
    }

    std::vector<std::int32_t> final_of;
    out.count = eq.flatten(final_of);
    out.stats.assign(static_cast<std::size_t>(out.count), ComponentStats{});
    std::vector<std::int64_t> euler4(static_cast<std::size_t>(out.count) + 1, 0);

    // Pass 2: final labels, statistics, Euler quads of pixel rows r-1 and r.
    for (int r = 0; r <= rows; ++r) {
        std::int32_t* l = r < rows ? labels + static_cast<std::size_t>(r) * w : nullptr;
        if (l) {
            const bool edge_row = r == 0 || r == rows - 1;
            for (int c = 0; c < cols; ++c) {
                if (!l[c]) continue;
                const std::int32_t f = final_of[static_cast<std::size_t>(l[c])];
                l[c] = f;
                ComponentStats& s = out.stats[static_cast<std::size_t>(f - 1)];
                if (s.area == 0) {
                    s.first_row = r;
                    s.first_col = c;
                }
                ++s.area;
                if (r < s.row_min) s.row_min = r;
                if (r > s.row_max) s.row_max = r;
                if (c < s.col_min) s.col_min = c;
                if (c > s.col_max) s.col_max = c;
                s.sum_row += r;
                s.sum_col += c;
                if (edge_row || c == 0 || c == cols - 1) s.touches_border = true;
            }
        }
        const std::int32_t* p = r > 0 ? labels + static_cast<std::size_t>(r - 1) * w : nullptr;
        // quads at columns c-1, c for c = 0..cols
        for (int c = 0; c <= cols; ++c) {
            const std::int32_t a = (p && c > 0) ? p[c - 1] : 0;
            const std::int32_t b = (p && c < cols) ? p[c] : 0;
            const std::int32_t d = (l && c > 0) ? l[c - 1] : 0;
            const std::int32_t e = (l && c < cols) ? l[c] : 0;
            if ((a | b | d | e) == 0) continue;
            detail::euler_quad(a, b, d, e, eight, euler4);
        }
    }
    for (std::int32_t i = 1; i <= out.count; ++i) {
        out.stats[static_cast<std::size_t>(i - 1)].euler = euler4[static_cast<std::size_t>(i)] / 4;
    }
    return out;
}

inline Labelled label(const std::uint8_t* mask, int rows, int cols, int connectivity = 8) {
    detail::check_image_size(rows, cols, "antema::label");
    Labelled out;
    out.labels.assign(static_cast<std::size_t>(rows) * static_cast<std::size_t>(cols), 0);
    out.result = label_into(mask, rows, cols, connectivity, out.labels.data());
    return out;
}

}  // namespace antema
