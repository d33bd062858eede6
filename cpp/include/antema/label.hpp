// Connected-component labelling of a binary mask, with per-label statistics.
//
// Algorithm: run-based two-scan labelling (Rosenfeld & Pfaltz, J. ACM 13 (1966) 471; the run
// variant of He, Chao & Suzuki, IEEE Trans. Image Process. 17 (2008) 749): each row is cut into
// runs of foreground pixels; a run takes the label of the runs of the previous row it touches
// (8- or 4-connectivity), joining them in a union-find table whose roots are always the smallest
// provisional label. Provisional labels are handed out in raster order, so final labels 1..n
// are numbered in raster order of each component's first pixel (as scipy.ndimage.label).
//
// Statistics (area, bounding box, centroid sums, border contact, first pixel, Euler number) are
// gathered per run in the same scan and merged along the equivalences; no label image is needed
// for them. Euler number per component = runs - adjacent run pairs (each independent cycle of
// the run adjacency graph encloses one hole), so holes = 1 - euler. The image is treated as
// surrounded by background. Before each provisional label is created the count is checked
// against the int32 range (std::overflow_error).
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
//   RunLabelling label_runs(const std::uint8_t* mask, int rows, int cols, int connectivity);
//       Statistics and the labelled runs (row, c0, c1, label) only, without a label image:
//       the fastest way to the statistics. paint_labels(rl, rows, cols, labels) draws them.
// Throws std::invalid_argument (bad sizes or connectivity) and std::overflow_error (more
// provisional labels than int32 can hold).
#pragma once

#include "restrict.hpp"

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <cstdint>
#include <limits>
#include <stdexcept>
#include <string>
#include <utility>
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
    Equivalences() { parent_.reserve(64); parent_.push_back(0); }

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

}  // namespace detail

struct Run {
    std::int32_t row;
    std::int32_t c0;     // first column of the run
    std::int32_t c1;     // last column (inclusive)
    std::int32_t label;  // final label (1..count) once label_runs returns
};

struct RunLabelling {
    LabelResult result;
    std::vector<Run> runs;  // every foreground run, in raster order, with its final label
};

namespace detail {

// Next column >= c whose byte is nonzero (== zero when want_zero), or cols. Skips eight bytes
// at a time through the long zero stretches of sparse masks.
inline int next_set(const std::uint8_t* m, int c, int cols) {
    while (c + 8 <= cols) {
        std::uint64_t w;
        std::memcpy(&w, m + c, 8);
        if (w != 0) break;
        c += 8;
    }
    while (c < cols && !m[c]) ++c;
    return c;
}

inline int next_clear(const std::uint8_t* m, int c, int cols) {
    while (c < cols && m[c]) ++c;
    return c;
}

}  // namespace detail

// Labels the runs of a mask without writing a label image. Statistics are gathered per run in
// the single scan and merged along the equivalences at the end. The Euler number comes from the
// runs: E = (number of runs) - (number of adjacent run pairs in consecutive rows), adjacency
// being 8- or 4-connectivity (each cycle of the run graph encloses one hole).
inline RunLabelling label_runs(const std::uint8_t* mask, int rows, int cols, int connectivity) {
    detail::check_image_size(rows, cols, "antema::label");
    if (connectivity != 4 && connectivity != 8) {
        throw std::invalid_argument("antema::label: expected connectivity 4 or 8, got " +
                                    std::to_string(connectivity));
    }
    RunLabelling out;
    if (rows == 0 || cols == 0) return out;
    const int reach = connectivity == 8 ? 1 : 0;  // how far a run reaches into the next row
    const std::size_t w = static_cast<std::size_t>(cols);
    detail::Equivalences eq;
    std::vector<ComponentStats> st(1);  // indexed by provisional label
    std::vector<Run>& runs = out.runs;
    runs.reserve(std::min<std::size_t>(4096, 2 * static_cast<std::size_t>(rows)));
    std::size_t prev_begin = 0, prev_end = 0;  // runs of the previous row
    for (int r = 0; r < rows; ++r) {
        const std::uint8_t* m = mask + static_cast<std::size_t>(r) * w;
        const std::size_t row_begin = runs.size();
        const bool edge_row = r == 0 || r == rows - 1;
        std::size_t j = prev_begin;
        int c = 0;
        while (true) {
            c = detail::next_set(m, c, cols);
            if (c >= cols) break;
            const int a = c;
            const int b = detail::next_clear(m, c, cols) - 1;
            c = b + 1;
            // previous-row runs that end before this run can touch it can be skipped for good
            while (j < prev_end && runs[j].c1 + reach < a) ++j;
            std::int32_t l = 0;
            std::int64_t adjacent = 0;
            for (std::size_t k = j; k < prev_end && runs[k].c0 <= b + reach; ++k) {
                ++adjacent;
                const std::int32_t lk = runs[k].label;
                l = l == 0 ? eq.find(lk) : eq.unite(l, lk);
            }
            if (l == 0) {
                l = eq.make();
                ComponentStats fresh;
                fresh.first_row = r;
                fresh.first_col = a;
                fresh.row_min = r;
                st.push_back(fresh);
            }
            ComponentStats& s = st[static_cast<std::size_t>(l)];
            const std::int64_t len = std::int64_t{b} - a + 1;
            s.area += len;
            s.sum_row += len * r;
            s.sum_col += (std::int64_t{a} + b) * len / 2;
            if (a < s.col_min) s.col_min = a;
            if (b > s.col_max) s.col_max = b;
            if (r < s.row_min) s.row_min = r;
            s.row_max = r;
            if (edge_row || a == 0 || b == cols - 1) s.touches_border = true;
            s.euler += 1 - adjacent;
            runs.push_back({r, a, b, l});
        }
        prev_begin = row_begin;
        prev_end = runs.size();
    }

    std::vector<std::int32_t> final_of;
    out.result.count = eq.flatten(final_of);
    out.result.stats.assign(static_cast<std::size_t>(out.result.count), ComponentStats{});
    for (std::size_t l = 1; l < st.size(); ++l) {
        const ComponentStats& p = st[l];
        ComponentStats& f = out.result.stats[static_cast<std::size_t>(final_of[l] - 1)];
        if (f.area == 0) {
            f = p;
            continue;
        }
        if (p.first_row < f.first_row || (p.first_row == f.first_row && p.first_col < f.first_col)) {
            f.first_row = p.first_row;
            f.first_col = p.first_col;
        }
        f.area += p.area;
        f.sum_row += p.sum_row;
        f.sum_col += p.sum_col;
        if (p.row_min < f.row_min) f.row_min = p.row_min;
        if (p.row_max > f.row_max) f.row_max = p.row_max;
        if (p.col_min < f.col_min) f.col_min = p.col_min;
        if (p.col_max > f.col_max) f.col_max = p.col_max;
        f.touches_border = f.touches_border || p.touches_border;
        f.euler += p.euler;
    }
    for (Run& run : runs) run.label = final_of[static_cast<std::size_t>(run.label)];
    return out;
}

// Writes the label image of a run labelling (labels: rows * cols int32).
// Each pixel is written once: the gaps between a row's runs get 0 (runs are in raster order).
inline void paint_labels(const RunLabelling& rl, int rows, int cols, std::int32_t* labels) {
    const std::size_t w = static_cast<std::size_t>(cols);
    const std::size_t n_runs = rl.runs.size();
    std::size_t k = 0;
    for (int r = 0; r < rows; ++r) {
        std::int32_t* l = labels + static_cast<std::size_t>(r) * w;
        int c = 0;
        for (; k < n_runs && rl.runs[k].row == r; ++k) {
            const Run& run = rl.runs[k];
            std::fill(l + c, l + run.c0, 0);
            std::fill(l + run.c0, l + run.c1 + 1, run.label);
            c = run.c1 + 1;
        }
        std::fill(l + c, l + cols, 0);
    }
}

inline LabelResult label_into(const std::uint8_t* mask, int rows, int cols, int connectivity,
                              std::int32_t* labels) {
    RunLabelling rl = label_runs(mask, rows, cols, connectivity);
    paint_labels(rl, rows, cols, labels);
    return std::move(rl.result);
}

inline Labelled label(const std::uint8_t* mask, int rows, int cols, int connectivity = 8) {
    detail::check_image_size(rows, cols, "antema::label");
    Labelled out;
    out.labels.assign(static_cast<std::size_t>(rows) * static_cast<std::size_t>(cols), 0);
    out.result = label_into(mask, rows, cols, connectivity, out.labels.data());
    return out;
}

}  // namespace antema
