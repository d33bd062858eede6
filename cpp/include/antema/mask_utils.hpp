// Mask clean-up used by the pipeline (SPEC section 1, steps 4 and 7).
//
// Public API (namespace antema); every function reads a row-major rows x cols mask
// (0 = background, nonzero = particle) and writes a 0/1 mask of the same size to `out`
// (which may alias `mask`):
//   void remove_small_objects(mask, rows, cols, min_px, connectivity, out);
//       drops components (4- or 8-connected) with fewer than min_px pixels.
//   void fill_holes(mask, rows, cols, smaller_than_px, connectivity, out);
//       fills holes: background components not connected to the image border, using the
//       connectivity complementary to the particles' (4 for 8-connected particles and vice
//       versa). Holes with fewer than smaller_than_px pixels are filled; smaller_than_px < 0
//       fills every hole.
//   void clear_border(mask, rows, cols, connectivity, out);
//       drops components that touch the image border.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "label.hpp"

namespace antema {

namespace detail {
// out = the runs of the components whose keep flag is set (0/1).
inline void paint_runs(const RunLabelling& lab, const std::vector<std::uint8_t>& keep, int rows, int cols,
                       std::uint8_t* out) {
    const std::size_t w = static_cast<std::size_t>(cols);
    std::fill(out, out + static_cast<std::size_t>(rows) * w, std::uint8_t{0});
    for (const Run& run : lab.runs) {
        if (!keep[static_cast<std::size_t>(run.label)]) continue;
        std::uint8_t* o = out + static_cast<std::size_t>(run.row) * w;
        std::fill(o + run.c0, o + run.c1 + 1, std::uint8_t{1});
    }
}
}  // namespace detail

inline void remove_small_objects(const std::uint8_t* mask, int rows, int cols, std::int64_t min_px,
                                 int connectivity, std::uint8_t* out) {
    const RunLabelling lab = label_runs(mask, rows, cols, connectivity);
    std::vector<std::uint8_t> keep(static_cast<std::size_t>(lab.result.count) + 1, 0);
    for (std::int32_t i = 0; i < lab.result.count; ++i) {
        keep[static_cast<std::size_t>(i) + 1] = lab.result.stats[static_cast<std::size_t>(i)].area >= min_px;
    }
    detail::paint_runs(lab, keep, rows, cols, out);
}

inline void fill_holes(const std::uint8_t* mask, int rows, int cols, std::int64_t smaller_than_px,
                       int connectivity, std::uint8_t* out) {
    detail::check_image_size(rows, cols, "antema::fill_holes");
    const std::size_t n = static_cast<std::size_t>(rows) * static_cast<std::size_t>(cols);
    std::vector<std::uint8_t> background(n);
    for (std::size_t k = 0; k < n; ++k) background[k] = mask[k] == 0;
    const int bg_conn = connectivity == 8 ? 4 : (connectivity == 4 ? 8 : connectivity);
    if (connectivity != 4 && connectivity != 8) {
        throw std::invalid_argument("antema::fill_holes: expected connectivity 4 or 8, got " +
                                    std::to_string(connectivity));
    }
    const RunLabelling lab = label_runs(background.data(), rows, cols, bg_conn);
    std::vector<std::uint8_t> fill(static_cast<std::size_t>(lab.result.count) + 1, 0);
    for (std::int32_t i = 0; i < lab.result.count; ++i) {
        const ComponentStats& s = lab.result.stats[static_cast<std::size_t>(i)];
        fill[static_cast<std::size_t>(i) + 1] =
            !s.touches_border && (smaller_than_px < 0 || s.area < smaller_than_px);
    }
    for (std::size_t k = 0; k < n; ++k) out[k] = mask[k] != 0;
    const std::size_t w = static_cast<std::size_t>(cols);
    for (const Run& run : lab.runs) {
        if (!fill[static_cast<std::size_t>(run.label)]) continue;
        std::uint8_t* o = out + static_cast<std::size_t>(run.row) * w;
        std::fill(o + run.c0, o + run.c1 + 1, std::uint8_t{1});
    }
}

inline void clear_border(const std::uint8_t* mask, int rows, int cols, int connectivity, std::uint8_t* out) {
    const RunLabelling lab = label_runs(mask, rows, cols, connectivity);
    std::vector<std::uint8_t> keep(static_cast<std::size_t>(lab.result.count) + 1, 0);
    for (std::int32_t i = 0; i < lab.result.count; ++i) {
        keep[static_cast<std::size_t>(i) + 1] = !lab.result.stats[static_cast<std::size_t>(i)].touches_border;
    }
    detail::paint_runs(lab, keep, rows, cols, out);
}

}  // namespace antema
