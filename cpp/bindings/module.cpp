// antema_fast._core: the binding layer. Each area registers itself from its own bind_<area>.cpp;
// this file only hands the module to them.
#include <pybind11/pybind11.h>

namespace py = pybind11;

// Registration functions of each area, defined in bind_<area>.cpp:
void register_label(py::module_& m);
void register_measure(py::module_& m);
void register_separate(py::module_& m);
void register_synth(py::module_& m);

PYBIND11_MODULE(_core, m) {
    m.doc() = "antema_fast compiled core (private; use the antema_fast package API)";
#ifdef ANTEMA_VERSION
    m.attr("__version__") = ANTEMA_VERSION;
#endif
    register_label(m);
    register_measure(m);
    register_separate(m);
    register_synth(m);
}
