// Bindings of the labelling and mask-utility kernels (label.hpp, mask_utils.hpp).
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <vector>

#include "antema/label.hpp"
#include "antema/mask_utils.hpp"
#include "array_util.hpp"

namespace py = pybind11;
using antema_bind::Mask;
using antema_bind::shape2d;
using antema_bind::to_numpy;

namespace {

py::dict stats_dict(const antema::LabelResult& res) {
    const std::size_t n = static_cast<std::size_t>(res.count);
    std::vector<std::int64_t> area(n), sum_row(n), sum_col(n), euler(n);
    std::vector<std::int32_t> rmin(n), cmin(n), rmax(n), cmax(n), frow(n), fcol(n);
    std::vector<std::uint8_t> border(n);
    for (std::size_t i = 0; i < n; ++i) {
        const antema::ComponentStats& s = res.stats[i];
        area[i] = s.area;
        sum_row[i] = s.sum_row;
        sum_col[i] = s.sum_col;
        euler[i] = s.euler;
        rmin[i] = s.row_min;
        cmin[i] = s.col_min;
        rmax[i] = s.row_max;
        cmax[i] = s.col_max;
        frow[i] = s.first_row;
        fcol[i] = s.first_col;
        border[i] = s.touches_border ? 1 : 0;
    }
    py::dict d;
    d["area"] = to_numpy(std::move(area));
    d["sum_row"] = to_numpy(std::move(sum_row));
    d["sum_col"] = to_numpy(std::move(sum_col));
    d["euler"] = to_numpy(std::move(euler));
    d["row_min"] = to_numpy(std::move(rmin));
    d["col_min"] = to_numpy(std::move(cmin));
    d["row_max"] = to_numpy(std::move(rmax));
    d["col_max"] = to_numpy(std::move(cmax));
    d["first_row"] = to_numpy(std::move(frow));
    d["first_col"] = to_numpy(std::move(fcol));
    d["touches_border"] = to_numpy(std::move(border));
    return d;
}

py::tuple label_py(const Mask& mask, int connectivity) {
    const auto [rows, cols] = shape2d(mask, "label");
    py::array_t<std::int32_t> labels({static_cast<py::ssize_t>(rows), static_cast<py::ssize_t>(cols)});
    const std::uint8_t* m = mask.data();
    std::int32_t* l = labels.mutable_data();
    antema::LabelResult res;
    {
        py::gil_scoped_release release;
        res = antema::label_into(m, rows, cols, connectivity, l);
    }
    return py::make_tuple(labels, res.count, stats_dict(res));
}

template <class Kernel>
py::array_t<std::uint8_t> mask_op(const Mask& mask, const char* what, Kernel kernel) {
    const auto [rows, cols] = shape2d(mask, what);
    py::array_t<std::uint8_t> out({static_cast<py::ssize_t>(rows), static_cast<py::ssize_t>(cols)});
    const std::uint8_t* m = mask.data();
    std::uint8_t* o = out.mutable_data();
    {
        py::gil_scoped_release release;
        kernel(m, rows, cols, o);
    }
    return out;
}

}  // namespace

void register_label(py::module_& m) {
    m.def("label", &label_py, py::arg("mask").noconvert(), py::arg("connectivity"),
          "Label a C-contiguous uint8 mask (connectivity 4 or 8). Returns (labels int32, count, "
          "stats dict of per-label arrays).");
    m.def(
        "remove_small_objects",
        [](const Mask& mask, std::int64_t min_px, int connectivity) {
            return mask_op(mask, "remove_small_objects", [=](const std::uint8_t* a, int r, int c, std::uint8_t* o) {
                antema::remove_small_objects(a, r, c, min_px, connectivity, o);
            });
        },
        py::arg("mask").noconvert(), py::arg("min_px"), py::arg("connectivity"));
    m.def(
        "fill_holes",
        [](const Mask& mask, std::int64_t smaller_than_px, int connectivity) {
            return mask_op(mask, "fill_holes", [=](const std::uint8_t* a, int r, int c, std::uint8_t* o) {
                antema::fill_holes(a, r, c, smaller_than_px, connectivity, o);
            });
        },
        py::arg("mask").noconvert(), py::arg("smaller_than_px"), py::arg("connectivity"));
    m.def(
        "clear_border",
        [](const Mask& mask, int connectivity) {
            return mask_op(mask, "clear_border", [=](const std::uint8_t* a, int r, int c, std::uint8_t* o) {
                antema::clear_border(a, r, c, connectivity, o);
            });
        },
        py::arg("mask").noconvert(), py::arg("connectivity"));
}
