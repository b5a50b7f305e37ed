#include "CAgentronShims.h"
