// Image formation of the synthetic micrograph generator (antema_fast.synth.render), fused into
// two passes over the frame: `form` (contrast of the projected thickness, lattice fringes,
// carbon support texture) before the optical blur, and `expose` (clipping, slow illumination
// gradient, detector gain, Poisson shot noise) after it. The NumPy formulas they implement are
// in tests/synth_reference.py (form_reference, expose_reference), which the tests compare.
#pragma once

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <thread>
#include <vector>

#include "antema/synth_raster.hpp"  // Xoshiro256, poisson_one

namespace antema {
namespace synth {

struct FormParams {
    bool haadf = false;          // bright particles on a dark background (else bright field)
    double mu = 0.05;            // BF: attenuation per nm; HAADF: signal per nm^gamma
    double gamma = 1.0;          // HAADF thickness exponent
    double background = 1.0;     // mean background level
    double carbon_amp = 0.05;    // sigma of the support texture relative to the background
    double lattice_amp = 0.0;    // relative fringe amplitude (0: no fringes)
    double vacuum = 1.0;         // level of a hole in the support film, relative to the film
};

// out = the noiseless, unblurred image. `tex` is the raw band-limited texture; it is scaled
// to unit standard deviation here (population sigma over the frame, as numpy's std). `film`
// (may be null: film everywhere) is the support film's cover, 1 on the film, 0 in a hole.
//   eff = thick > 0 ? contrast_w : 0, rel = lattice / max(thick, 1e-6), t = tex / sd(tex)
//   S = bg * (v + (1 - v) m + ca t m)   (m: film cover, v: vacuum level; m = 1 gives bg(1 + ca t))
//   BF:    S * exp(-mu eff) * (1 + la * rel * (1 - exp(-thick / 2)))
//   HAADF: S + mu * eff^gamma * (1 + la * rel)
inline void form(const float* thick, const float* contrast_w, const float* lattice,
                 const float* tex, const float* film, float* out, std::size_t n,
                 const FormParams& p) {
    double sum = 0.0, sum2 = 0.0;
    for (std::size_t i = 0; i < n; ++i) {
        const double t = tex[i];
        sum += t;
        sum2 += t * t;
    }
    const double nn = static_cast<double>(std::max<std::size_t>(n, 1));
    const double mean = sum / nn;
    const double var = std::max(sum2 / nn - mean * mean, 0.0);
    const double sd = std::sqrt(var);
    const float tex_scale = static_cast<float>(sd > 0 ? p.carbon_amp / sd : p.carbon_amp);
    const auto mu = static_cast<float>(p.mu), la = static_cast<float>(p.lattice_amp),
               bg = static_cast<float>(p.background), gam = static_cast<float>(p.gamma);
    const auto vac = static_cast<float>(p.vacuum);
    const bool fringes = p.lattice_amp != 0.0;
    for (std::size_t i = 0; i < n; ++i) {
        const float th = thick[i];
        const float eff = th > 0.0f ? contrast_w[i] : 0.0f;
        float support;
        if (film == nullptr) {
            support = bg * (1.0f + tex_scale * tex[i]);
        } else {
            const float m = film[i];
            support = bg * (vac + (1.0f - vac) * m + tex_scale * tex[i] * m);
        }
        float v;
        if (!p.haadf) {
            float sig = std::exp(-mu * eff);
            if (fringes && th > 0.0f) {
                const float rel = lattice[i] / std::max(th, 1e-6f);
                sig *= 1.0f + la * rel * (1.0f - std::exp(-0.5f * th));
            }
            v = support * sig;
        } else {
            float sig = eff > 0.0f ? mu * std::pow(eff, gam) : 0.0f;
            if (fringes && th > 0.0f) sig *= 1.0f + la * lattice[i] / std::max(th, 1e-6f);
            v = support + sig;
        }
        out[i] = v;
    }
}

struct ExposeParams {
    double gradient = 0.0;             // peak relative amplitude of the slow gradient
    double ga = 0.0, gb = 0.0, gc = 0.0;  // its x, y and quadratic coefficients
    double gain0 = 1.0, gain1 = 0.0;   // gain = gain0 + gain1 * field (field may be absent)
    double dose_scale = 0.0;           // electrons per image unit; <= 0 or inf: no noise
    std::uint64_t seed = 0;
};

// Rows per noise block: every block draws from its own generator, seeded from (seed, block),
// so the image does not depend on how many threads share the blocks.
constexpr int kExposeBlockRows = 16;

inline std::uint64_t block_seed(std::uint64_t seed, std::uint64_t block) {
    std::uint64_t z = seed ^ (0x9E3779B97F4A7C15ULL * (block + 1));  // splitmix64 finaliser
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

// img (rows x cols, modified in place):
//   v = max(img, 0) * max(1 + G (a gx + b gy + c/2 (gx^2 + gy^2)), 0.05) * max(gain, 0.05)
//   (gx, gy: -1..1 across the columns / rows), then v = Poisson(v * dose_scale) when noisy.
// threads: 0 = serial below 1 Mpx (training tiles: threads spawned per tile lose to a busy
// machine, measured in bench/bench_synth.py), up to 4 (hardware permitting) from 1 Mpx; the
// result is the same for any thread count.
inline void expose(float* img, const float* gain_field, int rows, int cols,
                   const ExposeParams& p, int threads = 0) {
    if (rows < 1 || cols < 1) return;
    const bool noisy = p.dose_scale > 0.0 && std::isfinite(p.dose_scale);
    const float dy = rows > 1 ? 2.0f / static_cast<float>(rows - 1) : 0.0f;
    const float dx = cols > 1 ? 2.0f / static_cast<float>(cols - 1) : 0.0f;
    const auto G = static_cast<float>(p.gradient), a = static_cast<float>(p.ga),
               b = static_cast<float>(p.gb), c = static_cast<float>(p.gc);
    const auto g0 = static_cast<float>(p.gain0), g1 = static_cast<float>(p.gain1);
    const auto dose = static_cast<float>(p.dose_scale);
    const int n_blocks = (rows + kExposeBlockRows - 1) / kExposeBlockRows;
    std::atomic<bool> bad{false};

    auto run_block = [&](int blk) {
        Xoshiro256 g(block_seed(p.seed, static_cast<std::uint64_t>(blk)));
        const int r1 = std::min(rows, (blk + 1) * kExposeBlockRows);
        for (int r = blk * kExposeBlockRows; r < r1; ++r) {
            const float gy = -1.0f + dy * static_cast<float>(r);
            const std::size_t off = static_cast<std::size_t>(r) * static_cast<std::size_t>(cols);
            float* row = img + off;
            const float* grow = gain_field ? gain_field + off : nullptr;
            for (int col = 0; col < cols; ++col) {
                float v = std::max(row[col], 0.0f);
                if (G > 0.0f) {
                    const float gx = -1.0f + dx * static_cast<float>(col);
                    v *= std::max(
                        1.0f + G * (a * gx + b * gy + 0.5f * c * (gx * gx + gy * gy)), 0.05f);
                }
                if (grow) v *= std::max(g0 + g1 * grow[col], 0.05f);
                if (noisy) {
                    const float lam = v * dose;
                    if (!std::isfinite(lam)) {
                        bad.store(true, std::memory_order_relaxed);
                        return;
                    }
                    v = static_cast<float>(poisson_one(static_cast<double>(lam), g));
                }
                row[col] = v;
            }
        }
    };

    int nt = threads;
    if (nt <= 0) {
        const long long px = static_cast<long long>(rows) * cols;
        const unsigned hw = std::max(1u, std::thread::hardware_concurrency());
        nt = px >= (1LL << 20) ? static_cast<int>(std::min(4u, hw)) : 1;
    }
    nt = std::max(1, std::min(nt, n_blocks));
    if (nt == 1) {
        for (int blk = 0; blk < n_blocks; ++blk) run_block(blk);
    } else {
        std::atomic<int> next{0};
        auto worker = [&]() {
            for (int blk = next.fetch_add(1); blk < n_blocks; blk = next.fetch_add(1)) {
                run_block(blk);
            }
        };
        std::vector<std::thread> pool;
        pool.reserve(static_cast<std::size_t>(nt - 1));
        for (int t = 1; t < nt; ++t) pool.emplace_back(worker);
        worker();
        for (std::thread& t : pool) t.join();
    }
    if (bad.load()) {
        throw std::invalid_argument(
            "antema::synth::expose: non-finite Poisson mean (image or dose)");
    }
}

}  // namespace synth
}  // namespace antema
