// Rasterisation and shot noise for the synthetic micrograph generator (antema_fast.synth).
//
// rasterize(): for each particle, its projected thickness on the pixels of its extent window,
// accumulated into the frame's canvases exactly as synth.render's reference NumPy loop does
// (same float64 formulas in the same order, float32 canvases):
//   thick += t;  count += (t > 0);  where t > best: best = t, labels = k;
//   contrast_w += t * contrast;  lattice += float32(t * fringe)   (when fringes are on)
// and each particle's own mask (t > 0) cut to its tight box. Particles with an empty mask are
// skipped and take no label number. Coordinates: pixel (r, c) sits at (r * s, c * s) nm.
//
// Solids (unit size parameter, scaled by scale_nm; dy, dx in units of scale_nm):
//   sphere      t = 2 s sqrt(max(1/4 - dx^2 - dy^2, 0))
//   ellipsoid   semi-axes a = sqrt(aspect)/2, b = 1/(2 sqrt(aspect)) along (ca, sa):
//               t = 2 b s sqrt(max(1 - (u/a)^2 - (v/b)^2, 0))
//   rod         spherocylinder of radius r = 1/(2 sqrt(aspect)), half length
//               h = max(sqrt(aspect)/2 - r, 0): t = 2 s sqrt(max(r^2 - du^2 - v^2, 0)),
//               du = max(|u| - h, 0)
//   polyhedron  faces n.x <= d with n already rotated: the chord length through the column
//               (x, y) is max(hi - lo, 0) from the faces that are not vertical, 0 outside a
//               vertical face.
//
// poisson_one(): a Poisson deviate from our own seeded generator (Xoshiro256: xoshiro256**,
// seeded by splitmix64): Knuth's multiplication method below a mean of 10, Hormann's
// transformed rejection with squeeze (PTRS, 1993) above. synth_image.hpp's expose() uses it.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

namespace antema {
namespace synth {

enum class Solid : int { sphere = 0, ellipsoid = 1, rod = 2, polyhedron = 3 };

constexpr int kMaxFaces = 16;

struct SolidParams {
    Solid kind = Solid::sphere;
    double y_nm = 0, x_nm = 0, scale_nm = 1, ext_px = 0;
    double ca = 1, sa = 0;  // in-plane body axis (ellipsoid, rod)
    double aspect = 1;
    int n_faces = 0;
    double normal[kMaxFaces][3] = {};
    double offset[kMaxFaces] = {};
    float contrast = 1.0f;
    double lat_k = 0, lat_ca = 1, lat_sa = 0, lat_phase = 0;  // fringes
};

struct Canvas {
    int rows = 0, cols = 0;
    float* thick = nullptr;
    float* best = nullptr;
    std::int32_t* labels = nullptr;
    std::uint8_t* count = nullptr;
    float* lattice = nullptr;
    float* contrast_w = nullptr;
};

struct RasterResult {
    std::vector<std::int32_t> index;  // input position of each kept particle
    std::vector<std::int32_t> bbox;   // r0, c0, r1, c1 (inclusive) per kept particle
    std::vector<std::int64_t> area;
    std::vector<std::int64_t> offsets{0};  // masks[offsets[i] : offsets[i + 1]]
    std::vector<std::uint8_t> masks;       // row-major tight masks, 0/1
};

inline double thickness_at(const SolidParams& p, double dy, double dx) {
    const double s = p.scale_nm;
    switch (p.kind) {
        case Solid::sphere: {
            const double q = 0.25 - dx * dx - dy * dy;
            return 2.0 * s * std::sqrt(q > 0.0 ? q : 0.0);
        }
        case Solid::ellipsoid: {
            const double u = dx * p.ca + dy * p.sa;
            const double v = -dx * p.sa + dy * p.ca;
            const double a = 0.5 * std::sqrt(p.aspect);
            const double b = 0.5 / std::sqrt(p.aspect);
            const double ua = u / a, vb = v / b;
            const double q = 1.0 - ua * ua - vb * vb;
            return 2.0 * b * s * std::sqrt(q > 0.0 ? q : 0.0);
        }
        case Solid::rod: {
            const double u = dx * p.ca + dy * p.sa;
            const double v = -dx * p.sa + dy * p.ca;
            const double r = 0.5 / std::sqrt(p.aspect);
            const double hh = std::fmax(0.5 * std::sqrt(p.aspect) - r, 0.0);
            const double du = std::fmax(std::fabs(u) - hh, 0.0);
            const double q = r * r - du * du - v * v;
            return 2.0 * s * std::sqrt(q > 0.0 ? q : 0.0);
        }
        case Solid::polyhedron: {
            double lo = -std::numeric_limits<double>::infinity();
            double hi = std::numeric_limits<double>::infinity();
            for (int f = 0; f < p.n_faces; ++f) {
                const double nx = p.normal[f][0], ny = p.normal[f][1], nz = p.normal[f][2];
                const double rhs = p.offset[f] - nx * dx - ny * dy;
                if (std::fabs(nz) < 1e-9) {
                    if (!(rhs >= 0)) return 0.0;
                } else if (nz > 0) {
                    hi = std::fmin(hi, rhs / nz);
                } else {
                    lo = std::fmax(lo, rhs / nz);
                }
            }
            return s * std::fmax(hi - lo, 0.0);
        }
    }
    return 0.0;
}

inline void check_params(const SolidParams& p, std::size_t i) {
    if (!(p.scale_nm > 0) || !std::isfinite(p.scale_nm) || !std::isfinite(p.y_nm) ||
        !std::isfinite(p.x_nm) || !std::isfinite(p.ext_px) || !(p.aspect > 0) ||
        p.n_faces < 0 || p.n_faces > kMaxFaces ||
        static_cast<int>(p.kind) < 0 || static_cast<int>(p.kind) > 3) {
        throw std::invalid_argument("antema::synth::rasterize: particle " + std::to_string(i) +
                                    " has invalid parameters");
    }
}

inline RasterResult rasterize(const std::vector<SolidParams>& particles, double pixel_size_nm,
                              const Canvas& cv, bool fringes, bool haadf_fringes) {
    if (!(pixel_size_nm > 0) || !std::isfinite(pixel_size_nm)) {
        throw std::invalid_argument("antema::synth::rasterize: expected a positive pixel size");
    }
    RasterResult out;
    const double s = pixel_size_nm;
    const int h = cv.rows, w = cv.cols;
    const std::size_t W = static_cast<std::size_t>(w);
    std::vector<float> t;
    for (std::size_t i = 0; i < particles.size(); ++i) {
        const SolidParams& p = particles[i];
        check_params(p, i);
        const double cy = p.y_nm / s, cx = p.x_nm / s;
        const double fr0 = std::floor(cy - p.ext_px), fr1 = std::ceil(cy + p.ext_px);
        const double fc0 = std::floor(cx - p.ext_px), fc1 = std::ceil(cx + p.ext_px);
        if (fr1 < 0 || fc1 < 0 || fr0 > h - 1 || fc0 > w - 1) continue;
        const int r0 = fr0 < 0 ? 0 : static_cast<int>(fr0);
        const int r1 = fr1 > h - 1 ? h - 1 : static_cast<int>(fr1);
        const int c0 = fc0 < 0 ? 0 : static_cast<int>(fc0);
        const int c1 = fc1 > w - 1 ? w - 1 : static_cast<int>(fc1);
        if (r0 > r1 || c0 > c1) continue;
        const int wh = r1 - r0 + 1, ww = c1 - c0 + 1;
        t.assign(static_cast<std::size_t>(wh) * static_cast<std::size_t>(ww), 0.0f);
        std::int64_t area = 0;
        int tr0 = wh, tr1 = -1, tc0 = ww, tc1 = -1;
        for (int r = 0; r < wh; ++r) {
            const double dy = (static_cast<double>(r0 + r) * s - p.y_nm) / p.scale_nm;
            float* trow = t.data() + static_cast<std::size_t>(r) * ww;
            for (int c = 0; c < ww; ++c) {
                const double dx = (static_cast<double>(c0 + c) * s - p.x_nm) / p.scale_nm;
                const float v = static_cast<float>(thickness_at(p, dy, dx));
                trow[c] = v;
                if (v > 0.0f) {
                    ++area;
                    if (r < tr0) tr0 = r;
                    tr1 = r;
                    if (c < tc0) tc0 = c;
                    if (c > tc1) tc1 = c;
                }
            }
        }
        if (area == 0) continue;
        const auto k = static_cast<std::int32_t>(out.index.size() + 1);
        const float contrast = p.contrast;
        for (int r = 0; r < wh; ++r) {
            const std::size_t base = static_cast<std::size_t>(r0 + r) * W + static_cast<std::size_t>(c0);
            const float* trow = t.data() + static_cast<std::size_t>(r) * ww;
            const double yy = static_cast<double>(r0 + r) * s - p.y_nm;
            for (int c = 0; c < ww; ++c) {
                const float v = trow[c];
                const std::size_t j = base + static_cast<std::size_t>(c);
                cv.thick[j] += v;
                cv.count[j] = static_cast<std::uint8_t>(cv.count[j] + (v > 0.0f ? 1 : 0));
                if (v > cv.best[j]) {
                    cv.best[j] = v;
                    cv.labels[j] = k;
                }
                cv.contrast_w[j] += v * contrast;
                if (fringes) {
                    const double xx = static_cast<double>(c0 + c) * s - p.x_nm;
                    const double ph = p.lat_k * (xx * p.lat_ca + yy * p.lat_sa) + p.lat_phase;
                    double fr = std::cos(ph);
                    if (haadf_fringes) {  // atomic columns: product of two crossed sets
                        const double ph2 = p.lat_k * (-xx * p.lat_sa + yy * p.lat_ca) + p.lat_phase;
                        fr = 0.25 * (1 + std::cos(ph)) * (1 + std::cos(ph2)) * 2.0 - 0.5;
                    }
                    cv.lattice[j] += static_cast<float>(static_cast<double>(v) * fr);
                }
            }
        }
        out.index.push_back(static_cast<std::int32_t>(i));
        out.bbox.insert(out.bbox.end(), {r0 + tr0, c0 + tc0, r0 + tr1, c0 + tc1});
        out.area.push_back(area);
        for (int r = tr0; r <= tr1; ++r) {
            const float* trow = t.data() + static_cast<std::size_t>(r) * ww;
            for (int c = tc0; c <= tc1; ++c) out.masks.push_back(trow[c] > 0.0f ? 1 : 0);
        }
        out.offsets.push_back(static_cast<std::int64_t>(out.masks.size()));
    }
    return out;
}

// ---------------------------------------------------------------------------------------------
// Random numbers and Poisson deviates (shot noise, synth_image.hpp)
// ---------------------------------------------------------------------------------------------

class Xoshiro256 {
public:
    explicit Xoshiro256(std::uint64_t seed) {
        for (std::uint64_t& v : s_) {  // splitmix64
            seed += 0x9E3779B97F4A7C15ULL;
            std::uint64_t z = seed;
            z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
            z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
            v = z ^ (z >> 31);
        }
    }
    std::uint64_t next() {
        const std::uint64_t result = rotl(s_[1] * 5, 7) * 9;
        const std::uint64_t t = s_[1] << 17;
        s_[2] ^= s_[0];
        s_[3] ^= s_[1];
        s_[1] ^= s_[2];
        s_[0] ^= s_[3];
        s_[2] ^= t;
        s_[3] = rotl(s_[3], 45);
        return result;
    }
    double uniform() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }  // [0, 1)

private:
    static std::uint64_t rotl(std::uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
    std::uint64_t s_[4];
};

// log(k!) for integer k >= 0: a table below 16, Stirling's series above (error < 1e-12).
// (std::lgamma writes the global signgam on glibc, a data race when threads call it.)
inline double log_factorial(double k) {
    static const double table[16] = {
        0.0, 0.0, 0.69314718055994531, 1.791759469228055, 3.1780538303479458,
        4.7874917427820458, 6.5792512120101012, 8.5251613610654147, 10.604602902745251,
        12.801827480081469, 15.104412573075516, 17.502307845873887, 19.987214495661885,
        22.552163853123425, 25.19122118273868, 27.89927138384089};
    if (k < 16) return table[static_cast<int>(k)];
    const double x = k + 1.0, x2 = x * x;
    return (x - 0.5) * std::log(x) - x + 0.91893853320467274 +
           (1.0 / 12.0 - (1.0 / 360.0 - 1.0 / (1260.0 * x2)) / x2) / x;
}

inline double poisson_one(double lam, Xoshiro256& g) {
    if (!(lam > 0)) return 0.0;
    if (lam < 10.0) {  // Knuth: count uniforms until their product drops below e^-lam
        const double limit = std::exp(-lam);
        double prod = g.uniform();
        double k = 0;
        while (prod > limit) {
            prod *= g.uniform();
            k += 1;
        }
        return k;
    }
    // PTRS (Hormann 1993): transformed rejection with squeeze. The logarithms are needed only
    // when the squeeze does not accept (about one draw in seven).
    const double b = 0.931 + 2.53 * std::sqrt(lam);
    const double a = -0.059 + 0.02483 * b;
    const double v_r = 0.9277 - 3.6224 / (b - 2.0);
    double log_alpha_term = 0.0, loglam = 0.0;
    bool logs = false;
    while (true) {
        const double u = g.uniform() - 0.5;
        const double v = g.uniform();
        const double us = 0.5 - std::fabs(u);
        const double k = std::floor((2.0 * a / us + b) * u + lam + 0.43);
        if (us >= 0.07 && v <= v_r) return k;
        if (k < 0 || (us < 0.013 && v > us)) continue;
        if (!logs) {
            log_alpha_term = std::log(1.1239 + 1.1328 / (b - 3.4));
            loglam = std::log(lam);
            logs = true;
        }
        if (std::log(v) + log_alpha_term - std::log(a / (us * us) + b) <=
            -lam + k * loglam - log_factorial(k)) {
            return k;
        }
    }
}

}  // namespace synth
}  // namespace antema
