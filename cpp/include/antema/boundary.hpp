// Outer boundary tracing and MATLAB's perimeter estimator.
//
// Tracing: Moore-neighbour tracing of the 8-connected outer boundary through pixel centres
// (Gonzalez & Woods, Digital Image Processing, ch. 11), started at the component's first pixel
// in raster order with the west neighbour as backtrack, and stopped when the tracer is about to
// repeat its very first move from the start pixel (a state-based stop criterion, so that
// contours passing several times through the start pixel are complete). The closed contour B
// visits pixels in clockwise order on screen (row 0 at the top) and repeats pixels on
// one-pixel-wide parts, like MATLAB's bwboundaries(..., 'noholes').
//
// Perimeter (SPEC section 2, MATLAB regionprops): with the steps of B squared componentwise,
//   P = 0.980 * even + 1.406 * odd - 0.091 * corners,
// even = steps along an axis, odd = diagonal steps, corners = cyclic changes of the squared step
// (an axis step followed by a diagonal one or vice versa, or a row step followed by a column
// step). A contour with fewer than two steps (a single pixel) has perimeter 0.
//
// Public API (namespace antema):
//   template <class Fg, class Visit>
//   ContourSteps trace_outer(Fg fg, int r0, int c0, Visit visit);
//       fg(r, c) -> bool says whether (r, c) is foreground (it must answer false outside the
//       image); (r0, c0) must be the component's first pixel in raster order. visit(r, c) is
//       called once per contour point (the start once at the beginning, not again at the end).
//   double perimeter_of(const ContourSteps&);
#pragma once

#include <cstdint>
#include <stdexcept>

namespace antema {

struct ContourSteps {
    std::int64_t even = 0;     // axis steps
    std::int64_t odd = 0;      // diagonal steps
    std::int64_t corners = 0;  // cyclic changes of the squared step
    std::int64_t steps() const { return even + odd; }
};

inline double perimeter_of(const ContourSteps& s) {
    if (s.steps() <= 1) return 0.0;
    return static_cast<double>(s.even) * 0.980 + static_cast<double>(s.odd) * 1.406 -
           static_cast<double>(s.corners) * 0.091;
}

namespace detail {
// Clockwise on screen (row down): E, SE, S, SW, W, NW, N, NE.
constexpr int kDr[8] = {0, 1, 1, 1, 0, -1, -1, -1};
constexpr int kDc[8] = {1, 1, 0, -1, -1, -1, 0, 1};
// Squared-step class of each direction: 0 = row step, 1 = column step, 2 = diagonal.
constexpr int kStepClass[8] = {1, 2, 0, 2, 1, 2, 0, 2};
// After a move in direction d, the backtrack (last background pixel scanned, at direction d-1
// from the old pixel) seen from the new pixel lies in direction kBack[d].
constexpr int kBack[8] = {6, 6, 0, 0, 2, 2, 4, 4};
}  // namespace detail

template <class Fg, class Visit>
ContourSteps trace_outer(Fg fg, int r0, int c0, Visit visit) {
    ContourSteps out;
    visit(r0, c0);
    // Backtrack of the start: west (direction 4). Scan clockwise from the next direction.
    auto next_move = [&](int r, int c, int back) -> int {
        for (int k = 1; k < 8; ++k) {
            const int d = (back + k) & 7;
            if (fg(r + detail::kDr[d], c + detail::kDc[d])) return d;
        }
        return -1;
    };
    const int first = next_move(r0, c0, 4);
    if (first < 0) return out;  // isolated pixel: no steps
    int r = r0, c = c0, d = first;
    int first_class = detail::kStepClass[first];
    int prev_class = -1;
    // A closed Moore contour of a component with A pixels has at most 4A steps (each pixel is
    // entered at most 4 times); the bound only guards against a predicate that lies.
    const std::int64_t guard = std::int64_t{1} << 40;
    for (std::int64_t n = 0;; ++n) {
        if (n > guard) throw std::logic_error("antema::trace_outer: contour did not close");
        const int cls = detail::kStepClass[d];
        if (cls == 2) {
            ++out.odd;
        } else {
            ++out.even;
        }
        if (prev_class >= 0 && cls != prev_class) ++out.corners;
        prev_class = cls;
        r += detail::kDr[d];
        c += detail::kDc[d];
        const int back = detail::kBack[d];
        const int nd = next_move(r, c, back);
        if (r == r0 && c == c0 && nd == first) break;
        visit(r, c);
        d = nd;
    }
    if (prev_class != first_class) ++out.corners;  // cyclic: last step against the first
    return out;
}

}  // namespace antema
