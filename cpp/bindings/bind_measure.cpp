// Bindings of the per-particle measurement kernels (measure.hpp, shape.hpp).
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "antema/contrast.hpp"
#include "antema/label.hpp"
#include "antema/measure.hpp"
#include "antema/shape.hpp"
#include "array_util.hpp"

namespace py = pybind11;
using antema_bind::Mask;
using antema_bind::shape2d;
using antema_bind::to_numpy;

namespace {

py::dict arrays_dict(antema::ParticleArrays&& a) {
    py::dict d;
    d["area"] = to_numpy(std::move(a.area));
    d["convex_area"] = to_numpy(std::move(a.convex_area));
    d["holes"] = to_numpy(std::move(a.holes));
    d["centroid_row"] = to_numpy(std::move(a.centroid_row));
    d["centroid_col"] = to_numpy(std::move(a.centroid_col));
    d["perimeter"] = to_numpy(std::move(a.perimeter));
    d["convex_perimeter"] = to_numpy(std::move(a.convex_perimeter));
    d["feret_max"] = to_numpy(std::move(a.feret_max));
    d["feret_max_angle"] = to_numpy(std::move(a.feret_max_angle));
    d["feret_min"] = to_numpy(std::move(a.feret_min));
    d["feret_min_angle"] = to_numpy(std::move(a.feret_min_angle));
    d["row_min"] = to_numpy(std::move(a.row_min));
    d["col_min"] = to_numpy(std::move(a.col_min));
    d["row_max"] = to_numpy(std::move(a.row_max));
    d["col_max"] = to_numpy(std::move(a.col_max));
    d["touches_border"] = to_numpy(std::move(a.touches_border));
    return d;
}

py::tuple crops_tuple(antema::CropSet&& c) {
    const auto n = static_cast<py::ssize_t>(c.size());
    return py::make_tuple(to_numpy(std::move(c.buffer)), to_numpy(std::move(c.offsets)),
                          to_numpy(std::move(c.shapes), {n, 2}), to_numpy(std::move(c.origins), {n, 2}));
}

// Labels (8-connected) and measures every component; optionally also returns the crops.
py::tuple measure_mask(const Mask& mask, bool with_crops) {
    const auto [rows, cols] = shape2d(mask, "measure_mask");
    const std::uint8_t* m = mask.data();
    antema::ParticleArrays arrays;
    antema::CropSet crops;
    {
        py::gil_scoped_release release;
        const antema::RunLabelling rl = antema::label_runs(m, rows, cols, 8);
        arrays = antema::measure_components(m, rows, cols, rl.result);
        if (with_crops) crops = antema::crops_from_runs(rl);
    }
    if (with_crops) return py::make_tuple(arrays_dict(std::move(arrays)), crops_tuple(std::move(crops)));
    return py::make_tuple(arrays_dict(std::move(arrays)), py::none());
}

py::tuple particles_from_mask(const Mask& mask, int connectivity) {
    const auto [rows, cols] = shape2d(mask, "particles_from_mask");
    const std::uint8_t* m = mask.data();
    antema::CropSet crops;
    {
        py::gil_scoped_release release;
        crops = antema::crops_from_runs(antema::label_runs(m, rows, cols, connectivity));
    }
    return crops_tuple(std::move(crops));
}

py::dict measure_crops(const py::array_t<std::uint8_t, py::array::c_style>& buffer,
                       const py::array_t<std::int64_t, py::array::c_style>& offsets,
                       const py::array_t<std::int32_t, py::array::c_style>& shapes,
                       const py::array_t<std::int32_t, py::array::c_style>& origins, int image_rows,
                       int image_cols) {
    if (buffer.ndim() != 1 || offsets.ndim() != 1) {
        throw py::value_error("measure_crops: expected 1-D buffer and offsets");
    }
    const auto n = static_cast<std::size_t>(offsets.shape(0) > 0 ? offsets.shape(0) - 1 : 0);
    if (offsets.shape(0) < 1 || shapes.ndim() != 2 || origins.ndim() != 2 || shapes.shape(1) != 2 ||
        origins.shape(1) != 2 || static_cast<std::size_t>(shapes.shape(0)) != n ||
        static_cast<std::size_t>(origins.shape(0)) != n) {
        throw py::value_error("measure_crops: expected offsets (n+1,), shapes (n, 2) and origins (n, 2)");
    }
    const std::uint8_t* b = buffer.data();
    const auto bsize = static_cast<std::int64_t>(buffer.shape(0));
    const std::int64_t* off = offsets.data();
    const std::int32_t* sh = shapes.data();
    const std::int32_t* org = origins.data();
    antema::ParticleArrays arrays;
    {
        py::gil_scoped_release release;
        arrays = antema::measure_crops(b, bsize, off, sh, org, n, image_rows, image_cols);
    }
    return arrays_dict(std::move(arrays));
}

py::dict convex_stats_py(const Mask& mask) {
    const auto [rows, cols] = shape2d(mask, "convex_stats");
    const std::uint8_t* m = mask.data();
    antema::ConvexStats s;
    {
        py::gil_scoped_release release;
        s = antema::convex_stats(m, rows, cols);
    }
    py::dict d;
    d["perimeter"] = s.perimeter;
    d["convex_perimeter"] = s.convex_perimeter;
    d["convexity"] = s.convexity;
    d["area"] = s.area;
    d["convex_area"] = s.convex_area;
    d["solidity"] = s.solidity;
    return d;
}

double perimeter_py(const Mask& mask) {
    const auto [rows, cols] = shape2d(mask, "perimeter");
    const std::uint8_t* m = mask.data();
    py::gil_scoped_release release;
    return antema::perimeter(m, rows, cols);
}

py::array_t<std::uint8_t> convex_image_py(const Mask& mask) {
    const auto [rows, cols] = shape2d(mask, "convex_image");
    const std::uint8_t* m = mask.data();
    std::vector<std::uint8_t> out;
    {
        py::gil_scoped_release release;
        out = antema::convex_image(m, rows, cols);
    }
    return to_numpy(std::move(out), {static_cast<py::ssize_t>(rows), static_cast<py::ssize_t>(cols)});
}

py::tuple hulls_py(const Mask& mask) {
    // Corner hull and midpoint hull (doubled coordinates) of the nonzero pixels, for tests.
    const auto [rows, cols] = shape2d(mask, "hulls");
    antema::RowExtents ext;
    ext.reset(0, rows);
    bool any = false;
    const std::uint8_t* m = mask.data();
    for (int r = 0; r < rows; ++r) {
        for (int c = 0; c < cols; ++c) {
            if (m[static_cast<std::size_t>(r) * static_cast<std::size_t>(cols) + static_cast<std::size_t>(c)]) {
                ext.add(r, c);
                any = true;
            }
        }
    }
    if (!any) throw py::value_error("hulls: expected at least one nonzero pixel");
    auto conv = [](const std::vector<antema::IPoint>& h) {
        std::vector<std::int64_t> v;
        v.reserve(2 * h.size());
        for (const auto& p : h) {
            v.push_back(p.y);
            v.push_back(p.x);
        }
        const auto n = static_cast<py::ssize_t>(h.size());
        return to_numpy(std::move(v), {n, 2});
    };
    return py::make_tuple(conv(antema::corner_hull(ext)), conv(antema::midpoint_hull(ext)));
}

// Optional uint8 mask of the image's shape (None: no mask).
const std::uint8_t* optional_mask(const py::object& obj, int rows, int cols, const char* what, Mask& keep) {
    if (obj.is_none()) return nullptr;
    keep = obj.cast<Mask>();
    const auto [r, c] = shape2d(keep, what);
    if (r != rows || c != cols) {
        throw py::value_error(std::string("contrast_z: ") + what + " shape differs from the image's");
    }
    return keep.data();
}

template <class T>
py::array_t<double> contrast_z_py(const py::array_t<T, py::array::c_style>& image, const py::object& segmented,
                                  const py::object& ignored,
                                  const py::array_t<std::uint8_t, py::array::c_style>& buffer,
                                  const py::array_t<std::int64_t, py::array::c_style>& offsets,
                                  const py::array_t<std::int32_t, py::array::c_style>& shapes,
                                  const py::array_t<std::int32_t, py::array::c_style>& origins, int gap,
                                  int width, int min_ring) {
    const auto [rows, cols] = shape2d(image, "contrast_z");
    Mask seg_keep, ign_keep;
    const std::uint8_t* seg = optional_mask(segmented, rows, cols, "segmented", seg_keep);
    const std::uint8_t* ign = optional_mask(ignored, rows, cols, "ignored", ign_keep);
    const auto n = static_cast<std::size_t>(offsets.shape(0) > 0 ? offsets.shape(0) - 1 : 0);
    if (buffer.ndim() != 1 || offsets.ndim() != 1 || offsets.shape(0) < 1 || shapes.ndim() != 2 ||
        origins.ndim() != 2 || shapes.shape(1) != 2 || origins.shape(1) != 2 ||
        static_cast<std::size_t>(shapes.shape(0)) != n || static_cast<std::size_t>(origins.shape(0)) != n) {
        throw py::value_error("contrast_z: expected buffer (m,), offsets (n+1,), shapes (n, 2), origins (n, 2)");
    }
    const T* img = image.data();
    const std::uint8_t* b = buffer.data();
    const auto bsize = static_cast<std::int64_t>(buffer.shape(0));
    const std::int64_t* off = offsets.data();
    const std::int32_t* sh = shapes.data();
    const std::int32_t* org = origins.data();
    std::vector<double> z;
    {
        py::gil_scoped_release release;
        z = antema::contrast_z(img, rows, cols, seg, ign, b, bsize, off, sh, org, n, gap, width, min_ring);
    }
    return to_numpy(std::move(z));
}

template <class T>
void def_contrast_z(py::module_& m) {
    m.def("contrast_z", &contrast_z_py<T>, py::arg("image").noconvert(), py::arg("segmented"),
          py::arg("ignored"), py::arg("buffer").noconvert(), py::arg("offsets").noconvert(),
          py::arg("shapes").noconvert(), py::arg("origins").noconvert(), py::arg("gap"), py::arg("width"),
          py::arg("min_ring"),
          "Contrast significance of particles (concatenated crops) against the ring of pixels more "
          "than gap and at most gap + width px from each (antema/contrast.hpp).");
}

}  // namespace

void register_measure(py::module_& m) {
    // one overload per image dtype, no conversion (the image is not copied)
    def_contrast_z<std::uint8_t>(m);
    def_contrast_z<std::uint16_t>(m);
    def_contrast_z<std::int16_t>(m);
    def_contrast_z<std::int32_t>(m);
    def_contrast_z<std::uint32_t>(m);
    def_contrast_z<float>(m);
    def_contrast_z<double>(m);
    m.def("measure_mask", &measure_mask, py::arg("mask").noconvert(), py::arg("with_crops") = false,
          "Label (8-connected) and measure every component of a C-contiguous uint8 mask. Returns "
          "(arrays dict, crops tuple or None).");
    m.def("particles_from_mask", &particles_from_mask, py::arg("mask").noconvert(), py::arg("connectivity"),
          "Crops of every component: (buffer uint8, offsets int64 (n+1), shapes int32 (n,2), "
          "origins int32 (n,2)).");
    m.def("measure_crops", &measure_crops, py::arg("buffer").noconvert(), py::arg("offsets").noconvert(),
          py::arg("shapes").noconvert(), py::arg("origins").noconvert(), py::arg("image_rows"),
          py::arg("image_cols"), "Measure particles given as concatenated crops.");
    m.def("convex_stats", &convex_stats_py, py::arg("mask").noconvert(),
          "Perimeter, convex perimeter, convexity, area, convex area, solidity of a crop.");
    m.def("perimeter", &perimeter_py, py::arg("mask").noconvert(),
          "MATLAB perimeter of the nonzero pixels of a crop (sum over 8-connected pieces).");
    m.def("convex_image", &convex_image_py, py::arg("mask").noconvert(), "Convex image of a crop (0/1).");
    m.def("hulls", &hulls_py, py::arg("mask").noconvert(),
          "(corner hull, edge-midpoint hull in doubled coordinates) of the nonzero pixels, as (k, 2) "
          "int64 arrays of (row, col), counter-clockwise in the (row, col) frame.");
}
