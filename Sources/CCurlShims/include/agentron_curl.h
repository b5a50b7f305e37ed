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

/// CURLOPT_SOCKOPTFUNCTION's shape: (userdata, fd, purpose) -> CURL_SOCKOPT_OK (0) to go on.
/// Called with every socket curl creates, before it connects.
typedef int (*agentron_curl_sockopt_callback)(void *userdata, int fd, int purpose);
/// CURLOPT_PREREQFUNCTION's shape (curl >= 7.80): called once the connection is made and
/// before the request goes out; CURL_PREREQFUNC_ABORT (1) fails the transfer with
/// CURLE_ABORTED_BY_CALLBACK before a single byte of the request is sent.
typedef int (*agentron_curl_prereq_callback)(
    void *userdata, char *primary_ip, char *local_ip, int primary_port, int local_port);

int agentron_curl_setopt_sockopt_callback(void *easy, agentron_curl_sockopt_callback callback);
int agentron_curl_setopt_prereq_callback(void *easy, agentron_curl_prereq_callback callback);

/// Names the calling thread (pthread_setname_np is a GNU extension Swift's Glibc module
/// does not show), so the HTTP event thread is recognisable in `ps -L` and debuggers.
void agentron_curl_name_thread(const char *name);

#endif
