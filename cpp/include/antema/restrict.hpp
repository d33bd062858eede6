// ANTEMA_RESTRICT: restrict-qualified local pointers let the compiler keep loop bounds in
// registers and vectorise loops that store bytes (a byte store may otherwise alias anything).
// Used only where the pointers provably do not overlap (distinct buffers).
#pragma once

#if defined(_MSC_VER)
#define ANTEMA_RESTRICT __restrict
#else
#define ANTEMA_RESTRICT __restrict__
#endif
