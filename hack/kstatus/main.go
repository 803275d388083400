// Command kstatus reads one Kubernetes object as JSON on stdin and prints how kstatus judges it:
// {"status": "InProgress|Failed|Current|Terminating|NotFound|Unknown", "message": "..."}.
//
// It is the readiness check Flux, `helm --wait` and `kubectl wait` rely on
// (sigs.k8s.io/cli-utils/pkg/kstatus/status), used by the tests as the real judge of the
// Hal9Migration status. Built by hack/build-kstatus.sh; nothing built is committed.
package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utiljson "k8s.io/apimachinery/pkg/util/json"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
)

type output struct {
	Status  string `json:"status"`
	Message string `json:"message"`
}

func main() {
	if err := run(os.Stdin, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "kstatus:", err)
		os.Exit(1)
	}
}

func run(in io.Reader, out io.Writer) error {
	data, err := io.ReadAll(in)
	if err != nil {
		return fmt.Errorf("reading stdin: %w", err)
	}
	// apimachinery's decoder keeps whole numbers as int64, as unstructured.NestedInt64 (which kstatus
	// uses for metadata.generation and status.observedGeneration) requires; encoding/json would give
	// float64 and kstatus would fail on it.
	var object map[string]interface{}
	if err := utiljson.Unmarshal(data, &object); err != nil {
		return fmt.Errorf("stdin is not one JSON object: %w", err)
	}
	if object == nil {
		return fmt.Errorf("stdin is not one JSON object")
	}
	result, err := status.Compute(&unstructured.Unstructured{Object: object})
	if err != nil {
		return fmt.Errorf("computing status: %w", err)
	}
	return json.NewEncoder(out).Encode(output{Status: string(result.Status), Message: result.Message})
}
