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
// Public API (namespace antema), all on row-major rows x cols uint8 images (0 = background,
// anything else = foreground; outputs are 0/1), `out` must not alias `in`:
//   enum class Element { square2, cross3 };
//   void erode(const uint8_t* in, uint8_t* out, int rows, int cols, Element e);
//   void dilate(const uint8_t* in, uint8_t* out, int rows, int cols, Element e);
//   void open_cross(const uint8_t* in, uint8_t* out, uint8_t* tmp, int rows, int cols);
//   void close_cross(const uint8_t* in, uint8_t* out, uint8_t* tmp, int rows, int cols);
#pragma once

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>

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

inline void erode(const std::uint8_t* in, std::uint8_t* out, int rows, int cols, Element e) {
    detail::check_morph_size(rows, cols);
    const std::size_t w = static_cast<std::size_t>(cols);
    for (int r = 0; r < rows; ++r) {
        const std::uint8_t* cur = in + static_cast<std::size_t>(r) * w;
        const std::uint8_t* up = r > 0 ? cur - w : nullptr;
        const std::uint8_t* dn = r + 1 < rows ? cur + w : nullptr;
        std::uint8_t* o = out + static_cast<std::size_t>(r) * w;
        if (e == Element::square2) {
            for (int c = 0; c < cols; ++c) {
                const bool right = c + 1 >= cols || cur[c + 1];
                const bool below = !dn || dn[c];
                const bool diag = !dn || c + 1 >= cols || dn[c + 1];
                o[c] = static_cast<std::uint8_t>(cur[c] && right && below && diag);
            }
        } else {
            for (int c = 0; c < cols; ++c) {
                const bool left = c == 0 || cur[c - 1];
                const bool right = c + 1 >= cols || cur[c + 1];
                const bool above = !up || up[c];
                const bool below = !dn || dn[c];
                o[c] = static_cast<std::uint8_t>(cur[c] && left && right && above && below);
            }
        }
    }
}

inline void dilate(const std::uint8_t* in, std::uint8_t* out, int rows, int cols, Element e) {
    detail::check_morph_size(rows, cols);
    const std::size_t w = static_cast<std::size_t>(cols);
    for (int r = 0; r < rows; ++r) {
        const std::uint8_t* cur = in + static_cast<std::size_t>(r) * w;
        const std::uint8_t* up = r > 0 ? cur - w : nullptr;
        const std::uint8_t* dn = r + 1 < rows ? cur + w : nullptr;
        std::uint8_t* o = out + static_cast<std::size_t>(r) * w;
        if (e == Element::square2) {
            for (int c = 0; c < cols; ++c) {
                const bool left = c > 0 && cur[c - 1];
                const bool above = up && up[c];
                const bool diag = up && c > 0 && up[c - 1];
                o[c] = static_cast<std::uint8_t>(cur[c] || left || above || diag);
            }
        } else {
            for (int c = 0; c < cols; ++c) {
                const bool left = c > 0 && cur[c - 1];
                const bool right = c + 1 < cols && cur[c + 1];
                const bool above = up && up[c];
                const bool below = dn && dn[c];
                o[c] = static_cast<std::uint8_t>(cur[c] || left || right || above || below);
            }
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
