// Small helpers shared by the bind_<area>.cpp files: check a 2-D mask argument and hand a
// std::vector to NumPy without copying it.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace antema_bind {

namespace py = pybind11;

using Mask = py::array_t<std::uint8_t, py::array::c_style>;

// Rows and cols of a C-contiguous 2-D array; throws ValueError otherwise.
template <class T>
inline std::pair<int, int> shape2d(const py::array_t<T, py::array::c_style>& a, const char* what) {
    if (a.ndim() != 2) {
        throw py::value_error(std::string(what) + ": expected a 2-D array, got " +
                              std::to_string(a.ndim()) + " dimensions");
    }
    if (a.shape(0) > INT32_MAX || a.shape(1) > INT32_MAX) {
        throw py::value_error(std::string(what) + ": image sides must be below 2**31");
    }
    return {static_cast<int>(a.shape(0)), static_cast<int>(a.shape(1))};
}

// Moves a vector into a NumPy array of the given shape (no copy).
template <class T>
inline py::array_t<T> to_numpy(std::vector<T>&& v, std::vector<py::ssize_t> shape) {
    auto* heap = new std::vector<T>(std::move(v));
    py::capsule owner(heap, [](void* p) { delete static_cast<std::vector<T>*>(p); });
    return py::array_t<T>(shape, heap->data(), owner);
}

template <class T>
inline py::array_t<T> to_numpy(std::vector<T>&& v) {
    const auto n = static_cast<py::ssize_t>(v.size());
    return to_numpy(std::move(v), {n});
}

}  // namespace antema_bind
