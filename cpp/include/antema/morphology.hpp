// Binary morphology on a bounding-box crop with the two structuring elements of UECS.
//
// Conventions (SPEC section 3, "Exact morphology"), which decide whether results match ANTEMA's:
//   * Erosion treats pixels outside the crop as foreground; dilation treats them as background
//     (MATLAB's padding for imerode / imdilate).
//   * The 2 x 2 square has its origin at the top-left element, as MATLAB places it. Erosion keeps
//     (r, c) only if (r, c), (r, c+1), (r+1, c) and (r+1, c+1) are all set; dilation (by the
//     reflected element) sets (r, c) if any of (r, c), (r, c-1), (r-1, c), (r-1, c-1) is set. So
//     an erosion and a dilation by the square shift the shape in opposite directions and cancel.
//   * The 3 x 3 cross (disc of radius 1) is symmetric.
//   * Opening = erosion then dilation; closing = dilation then erosion.
//
// Public API (namespace antema), all on row-major rows x cols uint8 images of 0 and 1 only
// (callers normalise other nonzero values first; outputs are 0/1), `out` must not alias `in`:
//   enum class Element { square2, cross3 };
//   void erode(const uint8_t* in, uint8_t* out, int rows, int cols, Element e);
//   void dilate(const uint8_t* in, uint8_t* out, int rows, int cols, Element e);
//   void open_cross(const uint8_t* in, uint8_t* out, uint8_t* tmp, int rows, int cols);
//   void close_cross(const uint8_t* in, uint8_t* out, uint8_t* tmp, int rows, int cols);
#pragma once

#include "restrict.hpp"

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace antema {

enum class Element { square2, cross3 };

namespace detail {
inline void check_morph_size(int rows, int cols) {
    if (rows < 0 || cols < 0) {
        throw std::invalid_argument("antema morphology: expected non-negative sizes, got " +
                                    std::to_string(rows) + " x " + std::to_string(cols));
    }
}
}  // namespace detail

// All four operations run branch-free over a row (the compiler vectorises them); rows outside
// the crop are read from a row of ones (erosion) or zeros (dilation), and the first and last
// column are handled on their own.
namespace detail {
inline const std::uint8_t* constant_row(int cols, std::uint8_t value) {
    thread_local std::vector<std::uint8_t> zeros, ones;
    std::vector<std::uint8_t>& v = value ? ones : zeros;
    if (v.size() < static_cast<std::size_t>(cols) + 1) v.assign(static_cast<std::size_t>(cols) + 1, value);
    return v.data();
}
}  // namespace detail

inline void erode(const std::uint8_t* in, std::uint8_t* out, int rows, int cols, Element e) {
    detail::check_morph_size(rows, cols);
    if (rows == 0 || cols == 0) return;
    const std::size_t w = static_cast<std::size_t>(cols);
    const std::uint8_t* one = detail::constant_row(cols, 1);
    for (int r = 0; r < rows; ++r) {
        const std::uint8_t* ANTEMA_RESTRICT cur = in + static_cast<std::size_t>(r) * w;
        const std::uint8_t* ANTEMA_RESTRICT up = r > 0 ? cur - w : one;
        const std::uint8_t* ANTEMA_RESTRICT dn = r + 1 < rows ? cur + w : one;
        std::uint8_t* ANTEMA_RESTRICT o = out + static_cast<std::size_t>(r) * w;
        const int last = cols - 1;
        if (e == Element::square2) {
            for (int c = 0; c < last; ++c) o[c] = cur[c] & cur[c + 1] & dn[c] & dn[c + 1];
            o[last] = cur[last] & dn[last];  // the column right of the crop counts as set
        } else {
            if (cols == 1) {
                o[0] = cur[0] & up[0] & dn[0];
                continue;
            }
            o[0] = cur[0] & cur[1] & up[0] & dn[0];
            for (int c = 1; c < last; ++c) {
                o[c] = cur[c] & cur[c - 1] & cur[c + 1] & up[c] & dn[c];
            }
            o[last] = cur[last] & cur[last - 1] & up[last] & dn[last];
        }
    }
}

inline void dilate(const std::uint8_t* in, std::uint8_t* out, int rows, int cols, Element e) {
    detail::check_morph_size(rows, cols);
    if (rows == 0 || cols == 0) return;
    const std::size_t w = static_cast<std::size_t>(cols);
    const std::uint8_t* zero = detail::constant_row(cols, 0);
    for (int r = 0; r < rows; ++r) {
        const std::uint8_t* ANTEMA_RESTRICT cur = in + static_cast<std::size_t>(r) * w;
        const std::uint8_t* ANTEMA_RESTRICT up = r > 0 ? cur - w : zero;
        const std::uint8_t* ANTEMA_RESTRICT dn = r + 1 < rows ? cur + w : zero;
        std::uint8_t* ANTEMA_RESTRICT o = out + static_cast<std::size_t>(r) * w;
        const int last = cols - 1;
        if (e == Element::square2) {
            o[0] = cur[0] | up[0];  // the column left of the crop counts as clear
            for (int c = 1; c < cols; ++c) o[c] = cur[c] | cur[c - 1] | up[c] | up[c - 1];
        } else {
            if (cols == 1) {
                o[0] = cur[0] | up[0] | dn[0];
                continue;
            }
            o[0] = cur[0] | cur[1] | up[0] | dn[0];
            for (int c = 1; c < last; ++c) {
                o[c] = cur[c] | cur[c - 1] | cur[c + 1] | up[c] | dn[c];
            }
            o[last] = cur[last] | cur[last - 1] | up[last] | dn[last];
        }
    }
}

// Opening with the cross; tmp is a caller-owned rows x cols scratch buffer.
inline void open_cross(const std::uint8_t* in, std::uint8_t* out, std::uint8_t* tmp, int rows,
                       int cols) {
    erode(in, tmp, rows, cols, Element::cross3);
    dilate(tmp, out, rows, cols, Element::cross3);
}

// Closing with the cross; tmp is a caller-owned rows x cols scratch buffer.
inline void close_cross(const std::uint8_t* in, std::uint8_t* out, std::uint8_t* tmp, int rows,
                        int cols) {
    dilate(in, tmp, rows, cols, Element::cross3);
    erode(tmp, out, rows, cols, Element::cross3);
}

}  // namespace antema
