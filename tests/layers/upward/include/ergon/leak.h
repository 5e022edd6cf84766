// A fixture for the layers test: a public header must not include a private one.
#include "store/store.h"
