#ifndef AGENTRON_CURL_H
#define AGENTRON_CURL_H
#endif
