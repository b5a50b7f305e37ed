// For pthread_setname_np; must come before any system header.
#define _GNU_SOURCE
#include "CCurlShims.h"

#include <curl/curl.h>
#include <pthread.h>

// Each wrapper fixes the type of the variadic argument, which is the whole point: curl reads
// it with va_arg as exactly long, char *, void *, or a function pointer.

int agentron_curl_setopt_long(void *easy, int option, long value) {
    return (int)curl_easy_setopt((CURL *)easy, (CURLoption)option, value);
}

int agentron_curl_setopt_str(void *easy, int option, const char *value) {
    return (int)curl_easy_setopt((CURL *)easy, (CURLoption)option, value);
}

int agentron_curl_setopt_ptr(void *easy, int option, void *value) {
    return (int)curl_easy_setopt((CURL *)easy, (CURLoption)option, value);
}

int agentron_curl_setopt_write_callback(void *easy, agentron_curl_data_callback callback) {
    return (int)curl_easy_setopt((CURL *)easy, CURLOPT_WRITEFUNCTION, (curl_write_callback)callback);
}

int agentron_curl_setopt_header_callback(void *easy, agentron_curl_data_callback callback) {
    return (int)curl_easy_setopt((CURL *)easy, CURLOPT_HEADERFUNCTION, (curl_write_callback)callback);
}

int agentron_curl_getinfo_long(void *easy, int info, long *out) {
    return (int)curl_easy_getinfo((CURL *)easy, (CURLINFO)info, out);
}

int agentron_curl_setopt_sockopt_callback(void *easy, agentron_curl_sockopt_callback callback) {
    return (int)curl_easy_setopt((CURL *)easy, CURLOPT_SOCKOPTFUNCTION, (curl_sockopt_callback)callback);
}

int agentron_curl_setopt_prereq_callback(void *easy, agentron_curl_prereq_callback callback) {
#if LIBCURL_VERSION_NUM >= 0x075000
    return (int)curl_easy_setopt((CURL *)easy, CURLOPT_PREREQFUNCTION, (curl_prereq_callback)callback);
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
