/* Compiling the header once here checks its _Static_asserts on every build. */
#include "hl_abi.h"
