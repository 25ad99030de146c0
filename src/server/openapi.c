/*
 * openapi.c: serves the OpenAPI 3.1 document of every route in server.c's
 * table. The document is src/server/openapi.json, embedded at build time
 * (tools/embed.sh); test_server.c checks both ways that the two stay in
 * step, and that the document is valid JSON.
 */
#include "server/server.h"

extern const char sl_openapi_json[];

const char *sl_server_openapi(void)
{
	return sl_openapi_json;
}
