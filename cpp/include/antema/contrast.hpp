// How far each particle's mean intensity stands off the pixels around it, in standard errors
// (antema_fast.separate.contrast_z; Settings.min_contrast_z).
//
// Public API (namespace antema):
//   std::vector<double> contrast_z(image, rows, cols, segmented, ignored, crops..., n,
//                                  gap, width, min_ring);
//       For particle i with pixels P (its crop, placed at its origin) and ring R (pixels whose
//       chessboard distance to P is > gap and <= gap + width, inside the image, not in
//       `segmented` and not in `ignored`, either of which may be null):
//           z = |mean(I[P]) - mean(I[R])| / (SD(I[R]) * sqrt(1/|P| + 1/|R|)),
//       SD with divisor |R|. NaN when |R| < min_ring; +inf when SD is 0 and the means differ,
//       0 when they do not.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

namespace antema {

namespace detail {

// out = dilation of the h x w 0/1 image `in` by the (2k + 1)^2 square (chessboard distance
// <= k), as two 1-D passes of window sums over prefix counts; `tmp` and `prefix` are scratch.
inline void dilate_square(const std::vector<std::uint8_t>& in, int h, int w, int k,
                          std::vector<std::uint8_t>& out, std::vector<std::uint8_t>& tmp,
                          std::vector<int>& prefix) {
    const auto hw = static_cast<std::size_t>(h) * static_cast<std::size_t>(w);
    out.assign(hw, 0);
    if (k <= 0) {
        std::copy(in.begin(), in.begin() + static_cast<std::ptrdiff_t>(hw), out.begin());
        return;
    }
    tmp.assign(hw, 0);
    prefix.assign(static_cast<std::size_t>(std::max(h, w)) + 1, 0);
    for (int r = 0; r < h; ++r) {  // along rows
        const std::uint8_t* row = in.data() + static_cast<std::size_t>(r) * w;
        for (int c = 0; c < w; ++c) prefix[c + 1] = prefix[c] + (row[c] ? 1 : 0);
        std::uint8_t* o = tmp.data() + static_cast<std::size_t>(r) * w;
        for (int c = 0; c < w; ++c) {
            o[c] = prefix[std::min(c + k + 1, w)] - prefix[std::max(c - k, 0)] > 0 ? 1 : 0;
        }
    }
    for (int c = 0; c < w; ++c) {  // along columns
        for (int r = 0; r < h; ++r) prefix[r + 1] = prefix[r] + (tmp[static_cast<std::size_t>(r) * w + c] ? 1 : 0);
        for (int r = 0; r < h; ++r) {
            out[static_cast<std::size_t>(r) * w + c] =
                prefix[std::min(r + k + 1, h)] - prefix[std::max(r - k, 0)] > 0 ? 1 : 0;
        }
    }
}

}  // namespace detail

template <class T>
std::vector<double> contrast_z(const T* image, int rows, int cols, const std::uint8_t* segmented,
                               const std::uint8_t* ignored, const std::uint8_t* buffer,
                               std::int64_t buffer_size, const std::int64_t* offsets,
                               const std::int32_t* shapes, const std::int32_t* origins, std::size_t n,
                               int gap, int width, int min_ring) {
    if (gap < 0 || width < 1) {
        throw std::invalid_argument("antema::contrast_z: expected gap >= 0 and width >= 1, got " +
                                    std::to_string(gap) + " and " + std::to_string(width));
    }
    const int k = gap + width;
    std::vector<double> z(n, std::numeric_limits<double>::quiet_NaN());
    std::vector<std::uint8_t> own, outer, inner, tmp;
    std::vector<int> prefix;
    std::vector<double> ring;
    for (std::size_t i = 0; i < n; ++i) {
        const int h = shapes[2 * i], w = shapes[2 * i + 1];
        const int pr = origins[2 * i], pc = origins[2 * i + 1];
        const std::int64_t off = offsets[i];
        if (h < 1 || w < 1 || off < 0 || offsets[i + 1] - off != std::int64_t{h} * w ||
            offsets[i + 1] > buffer_size || pr < 0 || pc < 0 || pr + h > rows || pc + w > cols) {
            throw std::invalid_argument("antema::contrast_z: particle " + std::to_string(i) +
                                        ": expected a bitmap inside the buffer and the " +
                                        std::to_string(rows) + " x " + std::to_string(cols) + " image");
        }
        const int r0 = std::max(pr - k, 0), c0 = std::max(pc - k, 0);
        const int r1 = std::min(pr + h + k, rows), c1 = std::min(pc + w + k, cols);
        const int H = r1 - r0, W = c1 - c0;
        own.assign(static_cast<std::size_t>(H) * W, 0);
        const std::uint8_t* bits = buffer + off;
        for (int r = 0; r < h; ++r) {
            for (int c = 0; c < w; ++c) {
                own[static_cast<std::size_t>(r + pr - r0) * W + (c + pc - c0)] =
                    bits[static_cast<std::size_t>(r) * w + c] ? 1 : 0;
            }
        }
        detail::dilate_square(own, H, W, k, outer, tmp, prefix);
        detail::dilate_square(own, H, W, gap, inner, tmp, prefix);
        double sum_in = 0.0;
        std::int64_t n_in = 0;
        ring.clear();
        for (int r = 0; r < H; ++r) {
            const std::size_t img_row = static_cast<std::size_t>(r + r0) * static_cast<std::size_t>(cols);
            for (int c = 0; c < W; ++c) {
                const std::size_t j = static_cast<std::size_t>(r) * W + c;
                const std::size_t g = img_row + static_cast<std::size_t>(c + c0);
                const double v = static_cast<double>(image[g]);
                if (own[j]) {
                    sum_in += v;
                    ++n_in;
                } else if (outer[j] && !inner[j] && !(segmented && segmented[g]) && !(ignored && ignored[g])) {
                    ring.push_back(v);
                }
            }
        }
        if (n_in == 0) {
            throw std::invalid_argument("antema::contrast_z: particle " + std::to_string(i) +
                                        " has an empty bitmap (expected at least one pixel)");
        }
        const auto m = static_cast<std::int64_t>(ring.size());
        if (m < min_ring) continue;
        double mean_r = 0.0;
        for (double v : ring) mean_r += v;
        mean_r /= static_cast<double>(m);
        double ss = 0.0;
        for (double v : ring) ss += (v - mean_r) * (v - mean_r);
        const double sd = std::sqrt(ss / static_cast<double>(m));
        const double diff = std::abs(sum_in / static_cast<double>(n_in) - mean_r);
        if (sd > 0.0) {
            z[i] = diff / (sd * std::sqrt(1.0 / static_cast<double>(n_in) + 1.0 / static_cast<double>(m)));
        } else {
            z[i] = diff > 0.0 ? std::numeric_limits<double>::infinity() : 0.0;
        }
    }
    return z;
}

}  // namespace antema
