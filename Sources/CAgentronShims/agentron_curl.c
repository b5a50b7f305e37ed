// For pthread_setname_np; must come before any system header.
#define _GNU_SOURCE
#include "CAgentronShims.h"

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

void agentron_curl_name_thread(const char *name) {
    pthread_setname_np(pthread_self(), name);
}
