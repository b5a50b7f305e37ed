// For pthread_setname_np; must come before any system header.
#define _GNU_SOURCE
#include "CCurlShims.h"

#include <curl/curl.h>
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>

// The entry points agentron uses, resolved once from libcurl.so.4 (the soname every
// libcurl 7.x/8.x keeps). Loading is deferred to the first HTTP request: the CLI's common
// commands never make one, and dlopen of curl's dependency tree costs milliseconds.
static struct {
    CURLcode (*global_init)(long);
    CURL *(*easy_init)(void);
    void (*easy_cleanup)(CURL *);
    const char *(*easy_strerror)(CURLcode);
    CURLcode (*easy_setopt)(CURL *, CURLoption, ...);
    CURLcode (*easy_getinfo)(CURL *, CURLINFO, ...);
    struct curl_slist *(*slist_append)(struct curl_slist *, const char *);
    void (*slist_free_all)(struct curl_slist *);
    CURLM *(*multi_init)(void);
    CURLMcode (*multi_add_handle)(CURLM *, CURL *);
    CURLMcode (*multi_remove_handle)(CURLM *, CURL *);
    CURLMcode (*multi_perform)(CURLM *, int *);
    CURLMcode (*multi_poll)(CURLM *, struct curl_waitfd *, unsigned int, int, int *);
    CURLMcode (*multi_wakeup)(CURLM *);
    CURLMcode (*multi_setopt)(CURLM *, CURLMoption, ...);
    CURLMsg *(*multi_info_read)(CURLM *, int *);
    const char *(*multi_strerror)(CURLMcode);
} curl;

static pthread_once_t load_once = PTHREAD_ONCE_INIT;
static int load_result = -1;
static char load_error[512] = "libcurl was not loaded";

static int resolve(void *library, const char *name, void **slot) {
    *slot = dlsym(library, name);
    if (*slot != NULL) return 0;
    snprintf(load_error, sizeof load_error, "libcurl.so.4 has no %s; install libcurl4 7.68 or later", name);
    return -1;
}

static void load(void) {
    void *library = dlopen("libcurl.so.4", RTLD_NOW | RTLD_LOCAL);
    if (library == NULL) {
        // The first name's error is the one to show: libcurl4 is what to install.
        const char *reason = dlerror();
        char first[256];
        snprintf(first, sizeof first, "%s", reason ? reason : "libcurl.so.4: cannot open");
        // Debian's other flavour (libcurl3-gnutls) has the same API under another name.
        library = dlopen("libcurl-gnutls.so.4", RTLD_NOW | RTLD_LOCAL);
        if (library == NULL) {
            snprintf(load_error, sizeof load_error, "cannot load libcurl (%s); install libcurl4 (apt install libcurl4)",
                     first);
            return;
        }
    }
    if (resolve(library, "curl_global_init", (void **)&curl.global_init) ||
        resolve(library, "curl_easy_init", (void **)&curl.easy_init) ||
        resolve(library, "curl_easy_cleanup", (void **)&curl.easy_cleanup) ||
        resolve(library, "curl_easy_strerror", (void **)&curl.easy_strerror) ||
        resolve(library, "curl_easy_setopt", (void **)&curl.easy_setopt) ||
        resolve(library, "curl_easy_getinfo", (void **)&curl.easy_getinfo) ||
        resolve(library, "curl_slist_append", (void **)&curl.slist_append) ||
        resolve(library, "curl_slist_free_all", (void **)&curl.slist_free_all) ||
        resolve(library, "curl_multi_init", (void **)&curl.multi_init) ||
        resolve(library, "curl_multi_add_handle", (void **)&curl.multi_add_handle) ||
        resolve(library, "curl_multi_remove_handle", (void **)&curl.multi_remove_handle) ||
        resolve(library, "curl_multi_perform", (void **)&curl.multi_perform) ||
        resolve(library, "curl_multi_poll", (void **)&curl.multi_poll) ||
        resolve(library, "curl_multi_wakeup", (void **)&curl.multi_wakeup) ||
        resolve(library, "curl_multi_setopt", (void **)&curl.multi_setopt) ||
        resolve(library, "curl_multi_info_read", (void **)&curl.multi_info_read) ||
        resolve(library, "curl_multi_strerror", (void **)&curl.multi_strerror)) {
        return;
    }
    load_result = 0;
}

int agentron_curl_load(void) {
    pthread_once(&load_once, load);
    return load_result;
}

const char *agentron_curl_load_error(void) {
    return load_error;
}

int agentron_curl_global_init(long flags) { return (int)curl.global_init(flags); }
void *agentron_curl_easy_init(void) { return curl.easy_init(); }
void agentron_curl_easy_cleanup(void *easy) { curl.easy_cleanup((CURL *)easy); }
const char *agentron_curl_easy_strerror(int code) { return curl.easy_strerror((CURLcode)code); }
void *agentron_curl_slist_append(void *list, const char *line) {
    return curl.slist_append((struct curl_slist *)list, line);
}
void agentron_curl_slist_free_all(void *list) { curl.slist_free_all((struct curl_slist *)list); }
void *agentron_curl_multi_init(void) { return curl.multi_init(); }
int agentron_curl_multi_add_handle(void *multi, void *easy) {
    return (int)curl.multi_add_handle((CURLM *)multi, (CURL *)easy);
}
int agentron_curl_multi_remove_handle(void *multi, void *easy) {
    return (int)curl.multi_remove_handle((CURLM *)multi, (CURL *)easy);
}
int agentron_curl_multi_perform(void *multi, int *running) { return (int)curl.multi_perform((CURLM *)multi, running); }
int agentron_curl_multi_poll(void *multi, int timeout_ms) {
    return (int)curl.multi_poll((CURLM *)multi, NULL, 0, timeout_ms, NULL);
}
int agentron_curl_multi_wakeup(void *multi) { return (int)curl.multi_wakeup((CURLM *)multi); }
int agentron_curl_multi_setopt_long(void *multi, int option, long value) {
    return (int)curl.multi_setopt((CURLM *)multi, (CURLMoption)option, value);
}
void *agentron_curl_multi_info_read(void *multi, int *queued) { return curl.multi_info_read((CURLM *)multi, queued); }
const char *agentron_curl_multi_strerror(int code) { return curl.multi_strerror((CURLMcode)code); }

// Each setopt/getinfo wrapper fixes the type of the variadic argument, which is the whole
// point: curl reads it with va_arg as exactly long, char *, void *, or a function pointer.

int agentron_curl_setopt_long(void *easy, int option, long value) {
    return (int)curl.easy_setopt((CURL *)easy, (CURLoption)option, value);
}

int agentron_curl_setopt_str(void *easy, int option, const char *value) {
    return (int)curl.easy_setopt((CURL *)easy, (CURLoption)option, value);
}

int agentron_curl_setopt_ptr(void *easy, int option, void *value) {
    return (int)curl.easy_setopt((CURL *)easy, (CURLoption)option, value);
}

int agentron_curl_setopt_write_callback(void *easy, agentron_curl_data_callback callback) {
    return (int)curl.easy_setopt((CURL *)easy, CURLOPT_WRITEFUNCTION, (curl_write_callback)callback);
}

int agentron_curl_setopt_header_callback(void *easy, agentron_curl_data_callback callback) {
    return (int)curl.easy_setopt((CURL *)easy, CURLOPT_HEADERFUNCTION, (curl_write_callback)callback);
}

int agentron_curl_getinfo_long(void *easy, int info, long *out) {
    return (int)curl.easy_getinfo((CURL *)easy, (CURLINFO)info, out);
}

int agentron_curl_setopt_sockopt_callback(void *easy, agentron_curl_sockopt_callback callback) {
    return (int)curl.easy_setopt((CURL *)easy, CURLOPT_SOCKOPTFUNCTION, (curl_sockopt_callback)callback);
}

int agentron_curl_setopt_prereq_callback(void *easy, agentron_curl_prereq_callback callback) {
#if LIBCURL_VERSION_NUM >= 0x075000
    return (int)curl.easy_setopt((CURL *)easy, CURLOPT_PREREQFUNCTION, (curl_prereq_callback)callback);
#else
    // Older curl cannot check the peer before sending; refusing beats sending unchecked.
    (void)easy;
    (void)callback;
    return (int)CURLE_NOT_BUILT_IN;
#endif
}

void agentron_curl_name_thread(const char *name) {
    pthread_setname_np(pthread_self(), name);
}
