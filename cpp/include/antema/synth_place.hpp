// Particle placement of the synthetic micrograph generator (antema_fast.synth.place_particles):
// rejection sampling of isolated particles, clusters of 2-3 touching / overlapping ones and
// large compact aggregates, with a uniform grid of the placed centres so a candidate meets only
// its 3 x 3 cells.
//
// Rules (all lengths in nm):
//   - particles of different groups keep a distance of at least 1.05 (r_a + r_b) + margin
//     between centres;
//   - a group's first member is drawn uniformly in [-0.3 r, H + 0.3 r] x [-0.3 r, W + 0.3 r];
//     each further member sits at a distance f (r_prev + r) from a random earlier member, in a
//     random direction, must be free of every particle outside its group and no closer than
//     m (r_a + r_b) to any member of its group; up to `member_tries` draws per member;
//   - clusters (kind 0): f in 0.55-0.95, m = 0.5; the group is placed whole or tried again, up
//     to `group_tries` times, then dropped;
//   - aggregates (kind 1): f in 0.80-0.98, m = 0.75 (touching neighbours with slight overlap,
//     no member deep inside another), twice the member draws; a member that finds no place is
//     left out and the aggregate keeps the others.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "antema/synth_raster.hpp"  // Xoshiro256

namespace antema {
namespace synth {

struct Placement {
    std::vector<std::int32_t> member;  // index into the diameter array, in placement order
    std::vector<double> y, x;          // centres, nm
};

class CentreGrid {
public:
    CentreGrid(double y0, double x0, double y1, double x1, double cell) : y0_(y0), x0_(x0) {
        // A larger cell is always correct (the 3 x 3 neighbourhood still covers the exclusion
        // distance); cap the cell count for huge fields of tiny particles.
        for (;;) {
            ny_ = static_cast<std::int64_t>(std::floor((y1 - y0) / cell)) + 1;
            nx_ = static_cast<std::int64_t>(std::floor((x1 - x0) / cell)) + 1;
            if (ny_ * nx_ <= (std::int64_t{1} << 22)) break;
            cell *= 2.0;
        }
        cell_ = cell;
        head_.assign(static_cast<std::size_t>(ny_ * nx_), -1);
    }

    void add(double y, double x, double r) {
        const auto k = static_cast<std::int32_t>(cy_.size());
        cy_.push_back(y);
        cx_.push_back(x);
        cr_.push_back(r);
        const std::size_t c = cell_of(y, x);
        next_.push_back(head_[c]);
        head_[c] = k;
    }

    // No placed centre closer than 1.05 (r + r_i) + margin.
    bool free(double y, double x, double r, double margin) const {
        const std::int64_t gy = row(y), gx = col(x);
        for (std::int64_t iy = std::max<std::int64_t>(gy - 1, 0);
             iy <= std::min<std::int64_t>(gy + 1, ny_ - 1); ++iy) {
            for (std::int64_t ix = std::max<std::int64_t>(gx - 1, 0);
                 ix <= std::min<std::int64_t>(gx + 1, nx_ - 1); ++ix) {
                for (std::int32_t k = head_[static_cast<std::size_t>(iy * nx_ + ix)]; k >= 0;
                     k = next_[static_cast<std::size_t>(k)]) {
                    const auto i = static_cast<std::size_t>(k);
                    const double dy = y - cy_[i], dx = x - cx_[i];
                    const double lim = 1.05 * (r + cr_[i]) + margin;
                    if (dy * dy + dx * dx < lim * lim) return false;
                }
            }
        }
        return true;
    }

private:
    std::int64_t row(double y) const {
        return std::clamp<std::int64_t>(static_cast<std::int64_t>(std::floor((y - y0_) / cell_)),
                                        0, ny_ - 1);
    }
    std::int64_t col(double x) const {
        return std::clamp<std::int64_t>(static_cast<std::int64_t>(std::floor((x - x0_) / cell_)),
                                        0, nx_ - 1);
    }
    std::size_t cell_of(double y, double x) const {
        return static_cast<std::size_t>(row(y) * nx_ + col(x));
    }

    double y0_, x0_, cell_ = 1.0;
    std::int64_t ny_ = 1, nx_ = 1;
    std::vector<std::int32_t> head_, next_;
    std::vector<double> cy_, cx_, cr_;
};

// diam: n diameters (nm); groups: sizes of the groups in the order they are tried (their
// members are consecutive diameters, the first group starting at 0); field h_nm x w_nm.
// kinds: per group, 0 = cluster, 1 = aggregate (nullptr: all clusters).
inline Placement place(const double* diam, std::int64_t n, const std::int32_t* groups,
                       std::int64_t n_groups, double h_nm, double w_nm, double margin_nm,
                       std::uint64_t seed, const std::int32_t* kinds = nullptr,
                       int group_tries = 300, int member_tries = 30) {
    double dmax = 0.0;
    for (std::int64_t i = 0; i < n; ++i) {
        if (!(diam[i] > 0.0) || !std::isfinite(diam[i])) {
            throw std::invalid_argument("synth_place: diameter " + std::to_string(i) +
                                        " is not a positive number");
        }
        dmax = std::max(dmax, diam[i]);
    }
    std::int64_t total = 0;
    for (std::int64_t g = 0; g < n_groups; ++g) {
        if (groups[g] < 1) throw std::invalid_argument("synth_place: a group size is < 1");
        if (kinds && kinds[g] != 0 && kinds[g] != 1) {
            throw std::invalid_argument("synth_place: a group kind is not 0 or 1");
        }
        total += groups[g];
    }
    if (total != n) {
        throw std::invalid_argument("synth_place: group sizes sum to " + std::to_string(total) +
                                    ", expected " + std::to_string(n));
    }
    if (!(h_nm > 0.0) || !(w_nm > 0.0) || !(margin_nm >= 0.0) || !std::isfinite(h_nm) ||
        !std::isfinite(w_nm) || !std::isfinite(margin_nm)) {
        throw std::invalid_argument(
            "synth_place: field size must be finite and > 0, margin finite and >= 0");
    }
    // Cells at least as wide as the largest exclusion distance. Centres outside the grid's
    // box are clamped into its border cells; clamping is monotone and moves indices by whole
    // cells, so two centres closer than a cell still land in the same or adjacent cells.
    const double cell = 1.05 * dmax + margin_nm + 1e-9;
    const double pad = 2.0 * dmax + cell;
    CentreGrid grid(-pad, -pad, h_nm + pad, w_nm + pad, cell);

    Xoshiro256 rng(seed);
    Placement out;
    out.member.reserve(static_cast<std::size_t>(n));
    out.y.reserve(static_cast<std::size_t>(n));
    out.x.reserve(static_cast<std::size_t>(n));
    struct Cand {
        double y, x, r;
    };
    std::vector<Cand> cand;
    constexpr double kTwoPi = 6.283185307179586;
    std::int64_t first = 0;
    std::vector<std::int32_t> placed_members;
    for (std::int64_t g = 0; g < n_groups; ++g) {
        const std::int32_t size = groups[g];
        const bool aggregate = kinds && kinds[g] == 1;
        const double f_lo = aggregate ? 0.80 : 0.55, f_span = aggregate ? 0.18 : 0.40;
        const double min_sep = aggregate ? 0.75 : 0.5;
        const int tries = aggregate ? 2 * member_tries : member_tries;
        for (int t = 0; t < group_tries; ++t) {
            cand.clear();
            placed_members.clear();
            const double r = 0.5 * diam[first];
            const double y = -0.3 * r + rng.uniform() * (h_nm + 0.6 * r);
            const double x = -0.3 * r + rng.uniform() * (w_nm + 0.6 * r);
            if (!grid.free(y, x, r, margin_nm)) continue;
            cand.push_back({y, x, r});
            placed_members.push_back(static_cast<std::int32_t>(first));
            bool ok = true;
            for (std::int32_t m = 1; m < size && ok; ++m) {
                const double rm = 0.5 * diam[first + m];
                bool found = false;
                for (int u = 0; u < tries; ++u) {
                    const auto pick = static_cast<std::size_t>(
                        std::min<double>(rng.uniform() * static_cast<double>(cand.size()),
                                         static_cast<double>(cand.size() - 1)));
                    const Cand p = cand[pick];
                    const double dist = (f_lo + f_span * rng.uniform()) * (p.r + rm);
                    const double ang = kTwoPi * rng.uniform();
                    const double yy = p.y + dist * std::sin(ang);
                    const double xx = p.x + dist * std::cos(ang);
                    if (!grid.free(yy, xx, rm, margin_nm)) continue;
                    bool apart = true;
                    for (const Cand& c : cand) {
                        const double lim = min_sep * (rm + c.r);
                        const double dy = yy - c.y, dx = xx - c.x;
                        if (dy * dy + dx * dx < lim * lim) {
                            apart = false;
                            break;
                        }
                    }
                    if (apart) {
                        cand.push_back({yy, xx, rm});
                        placed_members.push_back(static_cast<std::int32_t>(first + m));
                        found = true;
                        break;
                    }
                }
                ok = found || aggregate;
            }
            if (!ok) continue;
            for (std::size_t k = 0; k < cand.size(); ++k) {
                out.member.push_back(placed_members[k]);
                out.y.push_back(cand[k].y);
                out.x.push_back(cand[k].x);
                grid.add(cand[k].y, cand[k].x, cand[k].r);
            }
            break;
        }
        first += size;
    }
    return out;
}

}  // namespace synth
}  // namespace antema
