// A fixture for the layers test (tests/CMakeLists.txt): core is the bottom layer, so this
// include of the runtime must be refused. Never compiled.
#include "runtime/scheduler.h"
