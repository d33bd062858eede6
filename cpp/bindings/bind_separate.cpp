// Bindings of the separation kernels (morphology.hpp, uecs.hpp, watershed.hpp, separate.hpp).
// Shapes are checked and outputs allocated with the GIL held; the kernels run without it.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "antema/morphology.hpp"
#include "antema/separate.hpp"
#include "antema/uecs.hpp"
#include "antema/watershed.hpp"
#include "array_util.hpp"

namespace py = pybind11;
using antema_bind::Mask;
using antema_bind::shape2d;
using antema_bind::to_numpy;

namespace {

// Particles as concatenated crops (the CropSet layout of bind_measure.cpp) plus their extras.
void put_particles(py::dict& d, std::vector<antema::Piece>& ps) {
    const auto n = static_cast<py::ssize_t>(ps.size());
    std::vector<std::int64_t> offsets(ps.size() + 1, 0), area(ps.size());
    std::vector<std::int32_t> shapes(2 * ps.size()), origins(2 * ps.size()), erosions(ps.size());
    for (std::size_t i = 0; i < ps.size(); ++i) {
        offsets[i + 1] = offsets[i] + static_cast<std::int64_t>(ps[i].bitmap.size());
    }
    std::vector<std::uint8_t> buffer(static_cast<std::size_t>(offsets.back()));
    for (std::size_t i = 0; i < ps.size(); ++i) {
        std::copy(ps[i].bitmap.begin(), ps[i].bitmap.end(),
                  buffer.begin() + static_cast<std::ptrdiff_t>(offsets[i]));
        shapes[2 * i] = ps[i].rows;
        shapes[2 * i + 1] = ps[i].cols;
        origins[2 * i] = ps[i].row0;
        origins[2 * i + 1] = ps[i].col0;
        area[i] = ps[i].area;
        erosions[i] = ps[i].erosions;
    }
    d["buffer"] = to_numpy(std::move(buffer));
    d["offsets"] = to_numpy(std::move(offsets));
    d["shapes"] = to_numpy(std::move(shapes), {n, 2});
    d["origins"] = to_numpy(std::move(origins), {n, 2});
    d["area"] = to_numpy(std::move(area));
    d["erosions"] = to_numpy(std::move(erosions));
}

// Exclusions: reason code, area, inclusive bounding box (row_min, col_min, row_max, col_max).
void put_excluded(py::dict& d, const std::vector<antema::Piece>& ex) {
    const auto n = static_cast<py::ssize_t>(ex.size());
    std::vector<std::int32_t> reason(ex.size()), bbox(4 * ex.size());
    std::vector<std::int64_t> area(ex.size());
    for (std::size_t i = 0; i < ex.size(); ++i) {
        reason[i] = static_cast<std::int32_t>(ex[i].reason);
        area[i] = ex[i].area;
        bbox[4 * i] = ex[i].row0;
        bbox[4 * i + 1] = ex[i].col0;
        bbox[4 * i + 2] = ex[i].row0 + ex[i].rows - 1;
        bbox[4 * i + 3] = ex[i].col0 + ex[i].cols - 1;
    }
    d["excluded_reason"] = to_numpy(std::move(reason));
    d["excluded_area"] = to_numpy(std::move(area));
    d["excluded_bbox"] = to_numpy(std::move(bbox), {n, 4});
}

antema::Method parse_method(const std::string& s) {
    if (s == "uecs") return antema::Method::uecs;
    if (s == "watershed") return antema::Method::watershed;
    if (s == "none") return antema::Method::none;
    throw py::value_error("postprocess_frame: expected method 'uecs', 'watershed' or 'none', got '" +
                          s + "'");
}

py::dict postprocess_frame_py(const Mask& mask, const std::string& method, double threshold,
                              double min_convexity, std::int64_t max_holes, std::int64_t min_area,
                              std::int64_t min_marker_area, double watershed_h) {
    const auto [rows, cols] = shape2d(mask, "postprocess_frame");
    antema::FrameParams p;
    p.method = parse_method(method);
    p.threshold = threshold;
    p.min_convexity = min_convexity;
    p.max_holes = max_holes;
    p.min_area = min_area;
    p.min_marker_area = min_marker_area;
    p.watershed_h = watershed_h;
    const std::uint8_t* m = mask.data();
    antema::FrameResult r;
    {
        py::gil_scoped_release release;
        r = antema::postprocess_frame(m, rows, cols, p);
    }
    py::dict d;
    put_particles(d, r.particles);
    d["separated"] = to_numpy(std::move(r.separated));
    d["area_id"] = to_numpy(std::move(r.area_id));
    d["area_convexity"] = to_numpy(std::move(r.area_convexity));
    put_excluded(d, r.excluded);
    d["excluded_area_id"] = to_numpy(std::move(r.excluded_area_id));
    d["n_areas"] = r.n_areas;
    return d;
}

py::dict uecs_py(const Mask& area, std::int64_t min_marker_area, double threshold) {
    const auto [rows, cols] = shape2d(area, "uecs");
    const std::uint8_t* a = area.data();
    antema::SeparationResult r;
    {
        py::gil_scoped_release release;
        r = antema::uecs(a, rows, cols, antema::UecsParams{min_marker_area, threshold});
    }
    py::dict d;
    put_particles(d, r.particles);
    put_excluded(d, r.dropped);
    return d;
}

py::dict watershed_py(const Mask& area, double h) {
    const auto [rows, cols] = shape2d(area, "watershed");
    const std::uint8_t* a = area.data();
    antema::SeparationResult r;
    {
        py::gil_scoped_release release;
        r = antema::watershed(a, rows, cols, h);
    }
    py::dict d;
    put_particles(d, r.particles);
    put_excluded(d, r.dropped);
    return d;
}

py::array_t<std::uint8_t> morphology_py(const Mask& mask, const std::string& op,
                                        const std::string& element) {
    const auto [rows, cols] = shape2d(mask, "morphology");
    antema::Element e;
    if (element == "square") {
        e = antema::Element::square2;
    } else if (element == "cross") {
        e = antema::Element::cross3;
    } else {
        throw py::value_error("morphology: expected element 'square' or 'cross', got '" + element +
                              "'");
    }
    const bool cross_only = op == "open" || op == "close";
    if (!(op == "erode" || op == "dilate" || cross_only)) {
        throw py::value_error("morphology: expected op 'erode', 'dilate', 'open' or 'close', got '" +
                              op + "'");
    }
    if (cross_only && e != antema::Element::cross3) {
        throw py::value_error("morphology: opening and closing are defined with the cross only, got '" +
                              element + "'");
    }
    const std::size_t n = static_cast<std::size_t>(rows) * static_cast<std::size_t>(cols);
    std::vector<std::uint8_t> out(n), tmp(n), in(n);
    const std::uint8_t* src = mask.data();
    {
        py::gil_scoped_release release;
        for (std::size_t i = 0; i < n; ++i) in[i] = src[i] ? 1 : 0;  // the kernels take 0/1
        const std::uint8_t* m = in.data();
        if (op == "erode") {
            antema::erode(m, out.data(), rows, cols, e);
        } else if (op == "dilate") {
            antema::dilate(m, out.data(), rows, cols, e);
        } else if (op == "open") {
            antema::open_cross(m, out.data(), tmp.data(), rows, cols);
        } else {
            antema::close_cross(m, out.data(), tmp.data(), rows, cols);
        }
    }
    return to_numpy(std::move(out), {static_cast<py::ssize_t>(rows), static_cast<py::ssize_t>(cols)});
}

}  // namespace

void register_separate(py::module_& m) {
    m.def("postprocess_frame", &postprocess_frame_py, py::arg("mask").noconvert(), py::arg("method"),
          py::arg("threshold"), py::arg("min_convexity"), py::arg("max_holes"), py::arg("min_area"),
          py::arg("min_marker_area"), py::arg("watershed_h") = 2.0,
          "SPEC steps 4-7 on a C-contiguous uint8 mask: particles as concatenated crops (buffer, "
          "offsets, shapes, origins) with separated, area_id, area_convexity, erosions; exclusions "
          "as reason codes, areas and bounding boxes.");
    m.def("uecs", &uecs_py, py::arg("area").noconvert(), py::arg("min_marker_area"),
          py::arg("threshold"), "UECS of one area crop: particles (crop coordinates) and drops.");
    m.def("watershed", &watershed_py, py::arg("area").noconvert(), py::arg("h") = 2.0,
          "Marker-controlled watershed of one area crop (h-maxima markers, lines removed).");
    m.def("morphology", &morphology_py, py::arg("mask").noconvert(), py::arg("op"),
          py::arg("element"),
          "Binary erosion / dilation (square or cross) or opening / closing (cross) of a crop, "
          "with UECS's border conventions.");
}
