// Bindings of the synthetic generator's kernels (antema/synth_raster.hpp, synth_image.hpp,
// synth_place.hpp): synth_rasterize, synth_form and synth_expose (used by
// antema_fast.synth.render) and synth_place (antema_fast.synth.place_particles); all release
// the GIL.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstdint>
#include <cmath>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "antema/synth_image.hpp"
#include "antema/synth_place.hpp"
#include "antema/synth_raster.hpp"
#include "array_util.hpp"

namespace py = pybind11;
using antema_bind::shape2d;
using antema_bind::to_numpy;

namespace {

// Columns of the particle parameter table (float64, one row per particle).
constexpr int kColKind = 0, kColY = 1, kColX = 2, kColScale = 3, kColExt = 4, kColCa = 5,
              kColSa = 6, kColAspect = 7, kColFaces = 8, kColContrast = 9, kColLatK = 10,
              kColLatCa = 11, kColLatSa = 12, kColLatPhase = 13, kColNormals = 14;
constexpr int kCols = kColNormals + 4 * antema::synth::kMaxFaces;

template <class T>
using Arr = py::array_t<T, py::array::c_style>;

template <class T>
T* canvas_ptr(Arr<T>& a, int rows, int cols, const char* name) {
    const auto [r, c] = shape2d(a, name);
    if (r != rows || c != cols) {
        throw py::value_error(std::string("synth_rasterize: ") + name + " has shape " +
                              std::to_string(r) + " x " + std::to_string(c) + ", expected " +
                              std::to_string(rows) + " x " + std::to_string(cols));
    }
    return a.mutable_data();
}

py::dict rasterize_py(const Arr<double>& params, double pixel_size_nm, Arr<float>& thick,
                      Arr<float>& best, Arr<std::int32_t>& labels, Arr<std::uint8_t>& count,
                      Arr<float>& lattice, Arr<float>& contrast_w, bool fringes,
                      bool haadf_fringes) {
    if (params.ndim() != 2 || params.shape(1) != kCols) {
        throw py::value_error("synth_rasterize: expected a (N, " + std::to_string(kCols) +
                              ") float64 parameter table");
    }
    const auto [rows, cols] = shape2d(thick, "thick");
    antema::synth::Canvas cv;
    cv.rows = rows;
    cv.cols = cols;
    cv.thick = canvas_ptr(thick, rows, cols, "thick");
    cv.best = canvas_ptr(best, rows, cols, "best");
    cv.labels = canvas_ptr(labels, rows, cols, "labels");
    cv.count = canvas_ptr(count, rows, cols, "count");
    cv.lattice = canvas_ptr(lattice, rows, cols, "lattice");
    cv.contrast_w = canvas_ptr(contrast_w, rows, cols, "contrast_w");
    const auto n = static_cast<std::size_t>(params.shape(0));
    std::vector<antema::synth::SolidParams> ps(n);
    const double* t = params.data();
    for (std::size_t i = 0; i < n; ++i) {
        const double* row = t + i * kCols;
        antema::synth::SolidParams& p = ps[i];
        const int kind = static_cast<int>(row[kColKind]);
        if (kind < 0 || kind > 3 || row[kColKind] != kind) {
            throw py::value_error("synth_rasterize: particle " + std::to_string(i) +
                                  ": unknown solid kind");
        }
        p.kind = static_cast<antema::synth::Solid>(kind);
        p.y_nm = row[kColY];
        p.x_nm = row[kColX];
        p.scale_nm = row[kColScale];
        p.ext_px = row[kColExt];
        p.ca = row[kColCa];
        p.sa = row[kColSa];
        p.aspect = row[kColAspect];
        const double faces = row[kColFaces];
        if (!(faces >= 0 && faces <= antema::synth::kMaxFaces)) {
            throw py::value_error("synth_rasterize: particle " + std::to_string(i) +
                                  ": face count outside 0.." +
                                  std::to_string(antema::synth::kMaxFaces));
        }
        p.n_faces = static_cast<int>(faces);
        p.contrast = static_cast<float>(row[kColContrast]);
        p.lat_k = row[kColLatK];
        p.lat_ca = row[kColLatCa];
        p.lat_sa = row[kColLatSa];
        p.lat_phase = row[kColLatPhase];
        for (int f = 0; f < p.n_faces; ++f) {
            const double* nf = row + kColNormals + 4 * f;
            p.normal[f][0] = nf[0];
            p.normal[f][1] = nf[1];
            p.normal[f][2] = nf[2];
            p.offset[f] = nf[3];
        }
    }
    antema::synth::RasterResult r;
    {
        py::gil_scoped_release release;
        r = antema::synth::rasterize(ps, pixel_size_nm, cv, fringes, haadf_fringes);
    }
    const auto k = static_cast<py::ssize_t>(r.index.size());
    py::dict d;
    d["index"] = to_numpy(std::move(r.index));
    d["bbox"] = to_numpy(std::move(r.bbox), {k, 4});
    d["area"] = to_numpy(std::move(r.area));
    d["offsets"] = to_numpy(std::move(r.offsets));
    d["masks"] = to_numpy(std::move(r.masks));
    return d;
}

py::tuple place_py(const Arr<double>& diam, const Arr<std::int32_t>& groups, double h_nm,
                   double w_nm, double margin_nm, std::uint64_t seed,
                   const std::optional<Arr<std::int32_t>>& kinds) {
    if (diam.ndim() != 1 || groups.ndim() != 1) {
        throw py::value_error("synth_place: diam and groups must be 1-D arrays");
    }
    if (kinds && (kinds->ndim() != 1 || kinds->size() != groups.size())) {
        throw py::value_error("synth_place: kinds must be a 1-D array, one per group");
    }
    const double* d = diam.data();
    const std::int32_t* g = groups.data();
    const std::int32_t* k = kinds ? kinds->data() : nullptr;
    const auto n = static_cast<std::int64_t>(diam.size());
    const auto ng = static_cast<std::int64_t>(groups.size());
    antema::synth::Placement r;
    {
        py::gil_scoped_release release;
        r = antema::synth::place(d, n, g, ng, h_nm, w_nm, margin_nm, seed, k);
    }
    return py::make_tuple(to_numpy(std::move(r.member)), to_numpy(std::move(r.y)),
                          to_numpy(std::move(r.x)));
}

// The data of an optional canvas (nullptr when None) after checking its shape.
const float* optional_canvas(const std::optional<Arr<float>>& a, int rows, int cols,
                             const std::string& what, const char* like) {
    if (!a) return nullptr;
    const auto [r, c] = shape2d(*a, what.c_str());
    if (r != rows || c != cols) {
        throw py::value_error(what + " must have the shape of " + like);
    }
    return a->data();
}

py::array_t<float> form_py(const Arr<float>& thick, const Arr<float>& contrast_w,
                           const Arr<float>& lattice, const Arr<float>& tex, bool haadf,
                           double mu, double gamma, double background, double carbon_amp,
                           double lattice_amp, const std::optional<Arr<float>>& film,
                           double vacuum) {
    const auto [rows, cols] = shape2d(thick, "thick");
    for (const auto* a : {&contrast_w, &lattice, &tex}) {
        const auto [r, c] = shape2d(*a, "canvas");
        if (r != rows || c != cols) {
            throw py::value_error("synth_form: all canvases must have the shape of thick (" +
                                  std::to_string(rows) + " x " + std::to_string(cols) + ")");
        }
    }
    const float* fm = optional_canvas(film, rows, cols, "synth_form: film", "thick");
    if (!(std::isfinite(vacuum) && vacuum >= 0.0)) {
        throw py::value_error("synth_form: vacuum must be a finite number >= 0");
    }
    py::array_t<float> out({static_cast<py::ssize_t>(rows), static_cast<py::ssize_t>(cols)});
    const antema::synth::FormParams p{haadf,      mu,         gamma, background,
                                      carbon_amp, lattice_amp, vacuum};
    const float *t = thick.data(), *cw = contrast_w.data(), *lat = lattice.data(),
                *tx = tex.data();
    float* o = out.mutable_data();
    const auto n = static_cast<std::size_t>(rows) * static_cast<std::size_t>(cols);
    {
        py::gil_scoped_release release;
        antema::synth::form(t, cw, lat, tx, fm, o, n, p);
    }
    return out;
}

void expose_py(Arr<float>& img, const std::optional<Arr<float>>& gain_field, double gradient,
               double ga, double gb, double gc, double gain0, double gain1, double dose_scale,
               std::uint64_t seed, int threads) {
    const auto [rows, cols] = shape2d(img, "img");
    const float* gf = optional_canvas(gain_field, rows, cols, "synth_expose: gain_field", "img");
    const antema::synth::ExposeParams p{gradient, ga, gb, gc, gain0, gain1, dose_scale, seed};
    float* o = img.mutable_data();
    py::gil_scoped_release release;
    antema::synth::expose(o, gf, rows, cols, p, threads);
}

}  // namespace

void register_synth(py::module_& m) {
    m.attr("SYNTH_PARAM_COLUMNS") = kCols;
    m.attr("SYNTH_MAX_FACES") = antema::synth::kMaxFaces;
    m.def("synth_rasterize", &rasterize_py, py::arg("params").noconvert(),
          py::arg("pixel_size_nm"), py::arg("thick").noconvert(), py::arg("best").noconvert(),
          py::arg("labels").noconvert(), py::arg("count").noconvert(),
          py::arg("lattice").noconvert(), py::arg("contrast_w").noconvert(), py::arg("fringes"),
          py::arg("haadf_fringes"),
          "Accumulate particles' projected thickness into the canvases (in place); returns the "
          "kept particles' input index, tight bbox, area and packed masks.");
    m.def("synth_place", &place_py, py::arg("diam").noconvert(), py::arg("groups").noconvert(),
          py::arg("h_nm"), py::arg("w_nm"), py::arg("margin_nm"), py::arg("seed"),
          py::arg("kinds") = py::none(),
          "Place groups of particles (isolated, touching clusters, kind 1: compact aggregates) "
          "by seeded rejection sampling; returns (member index, y, x) in placement order.");
    m.def("synth_form", &form_py, py::arg("thick").noconvert(),
          py::arg("contrast_w").noconvert(), py::arg("lattice").noconvert(),
          py::arg("tex").noconvert(), py::arg("haadf"), py::arg("mu"), py::arg("gamma"),
          py::arg("background"), py::arg("carbon_amp"), py::arg("lattice_amp"),
          py::arg("film") = py::none(), py::arg("vacuum") = 1.0,
          "Noiseless, unblurred image from the rasterised canvases and the raw support "
          "texture (scaled to unit sigma here); film: the support film's cover (1 film, "
          "0 hole; None: film everywhere), vacuum: a hole's level relative to the film.");
    m.def("synth_expose", &expose_py, py::arg("img").noconvert(), py::arg("gain_field"),
          py::arg("gradient"), py::arg("ga"), py::arg("gb"), py::arg("gc"), py::arg("gain0"),
          py::arg("gain1"), py::arg("dose_scale"), py::arg("seed"), py::arg("threads") = 0,
          "In place: clip at 0, slow gradient, gain (gain0 + gain1 * field), Poisson noise "
          "at dose_scale electrons per unit (<= 0 or inf: none); threads 0 = auto (the result "
          "does not depend on it).");
}
