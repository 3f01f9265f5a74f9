package api

import _ "embed"

// OpenAPI is the OpenAPI 3.1 document of every route the server answers
// (package farebox/openapi loads it and checks messages against it). It is
// embedded so that the binary serves the document it was built with.
//
//go:embed openapi.json
var OpenAPI []byte
