// A fixture for the layers test: the store may use transport; this include is allowed.
#include "transport/notifier.h"
