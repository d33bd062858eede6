// Per-particle measurement, batched: every particle of a label image, or a list of particle crops
// (each its own bitmap, so separated particles may overlap), in one call.
//
// Results are a struct of arrays in PIXEL units and image coordinates (row, col); the Python layer
// turns them into the SPEC table (nm, circularity, convexity, solidity, ...).
//
// Public API (namespace antema):
//   ParticleArrays measure_components(const std::uint8_t* mask, int rows, int cols, const LabelResult&);
//       Every component of an 8-connected labelling, traced on the mask (no label image).
//   CropSet crops_from_runs(const RunLabelling&);  // the same crops, from label_runs
//   ParticleArrays measure_crops(const CropSet& crops, int image_rows, int image_cols);
//       Every crop measured (all its nonzero pixels form the particle). image_rows/cols < 0 mean
//       "image size unknown": touches_border is then 2 (unknown). Throws std::invalid_argument
//       for an empty crop or inconsistent offsets.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "label.hpp"
#include "shape.hpp"

namespace antema {

struct ParticleArrays {
    std::vector<std::int64_t> area, convex_area, holes;
    std::vector<double> centroid_row, centroid_col;
    std::vector<double> perimeter, convex_perimeter;
    std::vector<double> feret_max, feret_max_angle, feret_min, feret_min_angle;
    std::vector<std::int32_t> row_min, col_min, row_max, col_max;
    std::vector<std::uint8_t> touches_border;  // 0, 1, or 2 = unknown

    void resize(std::size_t n) {
        for (auto* v : {&area, &convex_area, &holes}) v->resize(n);
        for (auto* v : {&centroid_row, &centroid_col, &perimeter, &convex_perimeter, &feret_max,
                        &feret_max_angle, &feret_min, &feret_min_angle}) {
            v->resize(n);
        }
        for (auto* v : {&row_min, &col_min, &row_max, &col_max}) v->resize(n);
        touches_border.resize(n);
    }
    std::size_t size() const { return area.size(); }

    void set_geometry(std::size_t i, const ShapeGeometry& g) {
        perimeter[i] = g.perimeter;
        convex_perimeter[i] = g.convex_perimeter;
        convex_area[i] = g.convex_area;
        feret_max[i] = g.feret.max;
        feret_max_angle[i] = g.feret.max_angle_deg;
        feret_min[i] = g.feret.min;
        feret_min_angle[i] = g.feret.min_angle_deg;
    }
};

struct CropSet {
    std::vector<std::uint8_t> buffer;    // concatenated row-major bitmaps
    std::vector<std::int64_t> offsets;   // n + 1 offsets into buffer
    std::vector<std::int32_t> shapes;    // n x 2: rows, cols
    std::vector<std::int32_t> origins;   // n x 2: row0, col0 of the bitmap in the image
    std::size_t size() const { return shapes.size() / 2; }
};

// Every component of an 8-connected labelling of `mask` (from label_runs or label_into with
// connectivity 8), traced on the mask itself: the 8-neighbours of a component's pixels that are
// set belong to that component, so no label image is needed.
inline ParticleArrays measure_components(const std::uint8_t* mask, int rows, int cols, const LabelResult& lr) {
    ParticleArrays out;
    const std::size_t n = static_cast<std::size_t>(lr.count);
    out.resize(n);
    const std::size_t w = static_cast<std::size_t>(cols);
    auto fg = [mask, rows, cols, w](int r, int c) {
        return r >= 0 && c >= 0 && r < rows && c < cols &&
               mask[static_cast<std::size_t>(r) * w + static_cast<std::size_t>(c)] != 0;
    };
    std::vector<std::pair<int, int>> starts(1);
    for (std::size_t i = 0; i < n; ++i) {
        const ComponentStats& s = lr.stats[i];
        out.area[i] = s.area;
        out.holes[i] = s.holes();
        out.centroid_row[i] = static_cast<double>(s.sum_row) / static_cast<double>(s.area);
        out.centroid_col[i] = static_cast<double>(s.sum_col) / static_cast<double>(s.area);
        out.row_min[i] = s.row_min;
        out.col_min[i] = s.col_min;
        out.row_max[i] = s.row_max;
        out.col_max[i] = s.col_max;
        out.touches_border[i] = s.touches_border ? 1 : 0;
        starts[0] = {s.first_row, s.first_col};
        out.set_geometry(i, shape_geometry(fg, starts, s.row_min, s.row_max));
    }
    return out;
}

// Tight bounding-box bitmap of every component of a run labelling, concatenated.
inline CropSet crops_from_runs(const RunLabelling& rl) {
    CropSet out;
    const LabelResult& lr = rl.result;
    const std::size_t n = static_cast<std::size_t>(lr.count);
    out.offsets.resize(n + 1);
    out.shapes.resize(2 * n);
    out.origins.resize(2 * n);
    std::int64_t total = 0;
    for (std::size_t i = 0; i < n; ++i) {
        const ComponentStats& s = lr.stats[i];
        const std::int64_t h = s.row_max - s.row_min + 1, wd = s.col_max - s.col_min + 1;
        out.offsets[i] = total;
        out.shapes[2 * i] = static_cast<std::int32_t>(h);
        out.shapes[2 * i + 1] = static_cast<std::int32_t>(wd);
        out.origins[2 * i] = s.row_min;
        out.origins[2 * i + 1] = s.col_min;
        total += h * wd;
    }
    out.offsets[n] = total;
    out.buffer.assign(static_cast<std::size_t>(total), 0);
    for (const Run& run : rl.runs) {
        const std::size_t i = static_cast<std::size_t>(run.label - 1);
        const ComponentStats& s = lr.stats[i];
        std::uint8_t* d = out.buffer.data() + out.offsets[i] +
                          static_cast<std::size_t>(run.row - s.row_min) * static_cast<std::size_t>(out.shapes[2 * i + 1]);
        std::fill(d + (run.c0 - s.col_min), d + (run.c1 - s.col_min) + 1, std::uint8_t{1});
    }
    return out;
}

// Measures crops given as raw arrays (n crops; offsets has n + 1 entries).
inline ParticleArrays measure_crops(const std::uint8_t* buffer, std::int64_t buffer_size,
                                    const std::int64_t* offsets, const std::int32_t* shapes,
                                    const std::int32_t* origins, std::size_t n, int image_rows,
                                    int image_cols) {
    ParticleArrays out;
    out.resize(n);
    for (std::size_t i = 0; i < n; ++i) {
        const int h = shapes[2 * i], wd = shapes[2 * i + 1];
        const std::int64_t off = offsets[i];
        if (h < 0 || wd < 0 || off < 0 || offsets[i + 1] - off != std::int64_t{h} * wd ||
            offsets[i + 1] > buffer_size) {
            throw std::invalid_argument("antema::measure_crops: particle " + std::to_string(i) +
                                        ": expected a " + std::to_string(h) + " x " + std::to_string(wd) +
                                        " bitmap inside the buffer, got offsets " + std::to_string(off) +
                                        ".." + std::to_string(offsets[i + 1]));
        }
        const ShapeMeasures m = measure_shape(buffer + off, h, wd);
        if (m.area == 0) {
            throw std::invalid_argument("antema::measure_crops: particle " + std::to_string(i) +
                                        " has an empty bitmap (expected at least one pixel)");
        }
        const int r0 = origins[2 * i], c0 = origins[2 * i + 1];
        out.area[i] = m.area;
        out.holes[i] = m.holes;
        out.centroid_row[i] = m.sum_row / static_cast<double>(m.area) + r0;
        out.centroid_col[i] = m.sum_col / static_cast<double>(m.area) + c0;
        out.row_min[i] = m.row_min + r0;
        out.col_min[i] = m.col_min + c0;
        out.row_max[i] = m.row_max + r0;
        out.col_max[i] = m.col_max + c0;
        if (image_rows < 0 || image_cols < 0) {
            out.touches_border[i] = 2;
        } else {
            out.touches_border[i] = (out.row_min[i] <= 0 || out.col_min[i] <= 0 ||
                                     out.row_max[i] >= image_rows - 1 || out.col_max[i] >= image_cols - 1)
                                        ? 1
                                        : 0;
        }
        out.set_geometry(i, m.geometry);
    }
    return out;
}

inline ParticleArrays measure_crops(const CropSet& crops, int image_rows, int image_cols) {
    return measure_crops(crops.buffer.data(), static_cast<std::int64_t>(crops.buffer.size()),
                         crops.offsets.data(), crops.shapes.data(), crops.origins.data(), crops.size(),
                         image_rows, image_cols);
}

}  // namespace antema
