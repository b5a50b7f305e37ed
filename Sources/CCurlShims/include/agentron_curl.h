#ifndef AGENTRON_CURL_H
#define AGENTRON_CURL_H

// Typed wrappers for libcurl's variadic curl_easy_setopt / curl_easy_getinfo, which Swift
// cannot call. This header deliberately does not include <curl/curl.h>: Swift sees curl's
// own declarations through the CCurl module, and a second copy through this module would
// clash. Handles are `void *` (CURL is `typedef void CURL`), option and info codes are the
// raw values of CURLoption / CURLINFO, and every function returns the CURLcode as an int.
// Each goes through the library agentron_curl_load() opened.

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

/// libcurl is loaded on first use (dlopen of libcurl.so.4), not linked: a command that makes
/// no HTTP request (most of the CLI) never pays for curl and the thirty libraries it brings.
/// 0 when loaded; otherwise -1, and agentron_curl_load_error() says why.
int agentron_curl_load(void);
const char *agentron_curl_load_error(void);

/// The curl calls agentron makes, through the loaded library. Call agentron_curl_load()
/// first; each returns curl's own result (CURLcode / CURLMcode as int, handles as void *).
int agentron_curl_global_init(long flags);
void *agentron_curl_easy_init(void);
void agentron_curl_easy_cleanup(void *easy);
const char *agentron_curl_easy_strerror(int code);
void *agentron_curl_slist_append(void *list, const char *line);
void agentron_curl_slist_free_all(void *list);
void *agentron_curl_multi_init(void);
int agentron_curl_multi_add_handle(void *multi, void *easy);
int agentron_curl_multi_remove_handle(void *multi, void *easy);
int agentron_curl_multi_perform(void *multi, int *running);
int agentron_curl_multi_poll(void *multi, int timeout_ms);
int agentron_curl_multi_wakeup(void *multi);
/// curl_multi_setopt with a long value (CURLMOPT_MAXCONNECTS, ...).
int agentron_curl_multi_setopt_long(void *multi, int option, long value);
/// A CURLMsg *, or NULL when none is queued.
void *agentron_curl_multi_info_read(void *multi, int *queued);
const char *agentron_curl_multi_strerror(int code);

/// Names the calling thread (pthread_setname_np is a GNU extension Swift's Glibc module
/// does not show), so the HTTP event thread is recognisable in `ps -L` and debuggers.
void agentron_curl_name_thread(const char *name);

#endif
