// Bindings of the synthetic generator's kernels (antema/synth_raster.hpp): synth_rasterize and
// synth_poisson. Used by antema_fast.synth.render; both release the GIL.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

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

py::array_t<float> poisson_py(const Arr<float>& lam, std::uint64_t seed) {
    py::array_t<float> out(std::vector<py::ssize_t>(lam.shape(), lam.shape() + lam.ndim()));
    const float* in = lam.data();
    float* o = out.mutable_data();
    const auto n = static_cast<std::size_t>(lam.size());
    {
        py::gil_scoped_release release;
        antema::synth::poisson(in, o, n, seed);
    }
    return out;
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
    m.def("synth_poisson", &poisson_py, py::arg("lam").noconvert(), py::arg("seed"),
          "Poisson deviates (float32) of a float32 mean array, seeded.");
}
