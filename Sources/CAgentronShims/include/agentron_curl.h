#ifndef AGENTRON_CURL_H
#define AGENTRON_CURL_H

// Typed wrappers for libcurl's variadic curl_easy_setopt / curl_easy_getinfo, which Swift
// cannot call. This header deliberately does not include <curl/curl.h>: Swift sees curl's
// own declarations through the CCurl module, and a second copy through this module would
// clash. Handles are `void *` (CURL is `typedef void CURL`), option and info codes are the
// raw values of CURLoption / CURLINFO, and every function returns the CURLcode as an int.

#include <stddef.h>

/// libcurl's write and header callback shape: (data, size, nitems, userdata) -> bytes taken.
typedef size_t (*agentron_curl_data_callback)(char *data, size_t size, size_t nitems, void *userdata);

int agentron_curl_setopt_long(void *easy, int option, long value);
int agentron_curl_setopt_str(void *easy, int option, const char *value);
int agentron_curl_setopt_ptr(void *easy, int option, void *value);
int agentron_curl_setopt_write_callback(void *easy, agentron_curl_data_callback callback);
int agentron_curl_setopt_header_callback(void *easy, agentron_curl_data_callback callback);

int agentron_curl_getinfo_long(void *easy, int info, long *out);

/// Names the calling thread (pthread_setname_np is a GNU extension Swift's Glibc module
/// does not show), so the HTTP event thread is recognisable in `ps -L` and debuggers.
void agentron_curl_name_thread(const char *name);

#endif
