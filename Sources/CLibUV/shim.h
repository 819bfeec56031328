#ifndef STARLING_CLIBUV_SHIM_H
#define STARLING_CLIBUV_SHIM_H
#include <uv.h>
#endif
