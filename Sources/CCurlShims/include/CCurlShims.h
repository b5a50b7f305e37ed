// What Swift cannot call in libcurl: the variadic curl_easy_setopt/getinfo, through typed
// wrappers. Only the HTTP client uses it; it is the one shim that links libcurl.
#ifndef AGENTRON_CURL_SHIMS_H
#define AGENTRON_CURL_SHIMS_H

#include "agentron_curl.h"

#endif
