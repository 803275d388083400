"""Print the manifests in FILE... moved to namespace NS (Namespace objects renamed to NS).

Usage: python e2e/in-namespace.py NS FILE... | kubectl apply -f -
"""

import sys

import yaml

namespace, *files = sys.argv[1:]
docs = []
for path in files:
    with open(path) as f:
        for doc in yaml.safe_load_all(f):
            if doc["kind"] == "Namespace":
                doc["metadata"]["name"] = namespace
            else:
                doc["metadata"]["namespace"] = namespace
            docs.append(doc)
yaml.safe_dump_all(docs, sys.stdout, sort_keys=False)
