// libcurl for Swift: loaded on first use, every call agentron makes through it, and typed
// wrappers for the variadic curl_easy_setopt/getinfo. Only the HTTP client uses it.
#ifndef AGENTRON_CURL_SHIMS_H
#define AGENTRON_CURL_SHIMS_H

#include "agentron_curl.h"

#endif
