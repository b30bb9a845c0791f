#!/usr/bin/env bash
# KubeVision on a local kind cluster, from nothing to a prediction (make kind-up / make kind-down):
#   deploy/kind/kind.sh up [--dry-run]    create the cluster, build and load the images, install the chart with its
#                                         in-chart S3, MLflow and PostgreSQL, upload the sample photos, train and
#                                         publish the sample project on CPU, print a curl line that classifies a photo
#   deploy/kind/kind.sh down [--dry-run]  delete the cluster
# --dry-run prints every command and runs none. Needs docker, kind, kubectl, helm and the .venv of `make`.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
CLUSTER=kubevision
NAMESPACE=kubevision          # the chart's
PROJECTS=default              # the sample project's (deploy/kind/values.yaml lists it)
REGISTRY=ghcr.io/kubevision
TAG=$(sed -n 's/^version = "\(.*\)"/\1/p' "$ROOT/pyproject.toml")
IMAGES=(operator gateway trainer mlflow)
GATEWAY_URL=http://localhost:30080  # the gateway's node port, mapped to the host by kind-config.yaml
S3_PORT=19000                       # where MinIO is port-forwarded while the photos are uploaded
DRY_RUN=false
FORWARD_PID=""

# Print a command, then run it unless this is a dry run.
run() {
  echo "+ $*"
  if [[ $DRY_RUN == false ]]; then "$@"; fi
}

# Print a command whose output the script needs (on fd 3, the script's stdout); a dry run answers with a placeholder.
read_from() {
  echo "+ $*" >&3
  if [[ $DRY_RUN == false ]]; then "$@"; else echo "<${*: -1}>"; fi
}

# Whether a read-only check holds; a dry run assumes it does not, so it prints every step.
holds() {
  [[ $DRY_RUN == false ]] && "$@" >/dev/null 2>&1
}

create_cluster() {
  if holds kind get kubeconfig --name "$CLUSTER"; then
    echo "kind cluster $CLUSTER exists"
  else
    run kind create cluster --config "$ROOT/kind-config.yaml" --wait 120s
  fi
}

build_and_load_images() {
  run make -C "$ROOT" images IMAGE_REGISTRY="$REGISTRY" IMAGE_TAG="$TAG"
  if [[ $DRY_RUN == true ]]; then make --no-print-directory -n -C "$ROOT" images IMAGE_REGISTRY="$REGISTRY" \
    IMAGE_TAG="$TAG" | sed 's/^/    /'; fi
  local image
  for image in "${IMAGES[@]}"; do
    run kind load docker-image "$REGISTRY/$image:$TAG" --name "$CLUSTER"
  done
}

install_chart() {
  run helm upgrade --install kubevision "$ROOT/charts/kubevision" --namespace "$NAMESPACE" --create-namespace \
    --values "$ROOT/deploy/kind/values.yaml" --wait --timeout 15m
}

# A Secret's value, decoded; a dry run answers with a placeholder.
secret_value() {
  local encoded
  encoded=$(read_from kubectl -n "$1" get secret "$2" -o "jsonpath={.data.$3}")
  if [[ $DRY_RUN == true ]]; then echo "$encoded"; else base64 -d <<<"$encoded"; fi
}

stop_port_forward() {
  if [[ -n $FORWARD_PID ]]; then kill "$FORWARD_PID" 2>/dev/null || true; fi
  FORWARD_PID=""
}

upload_samples() {
  echo "+ kubectl -n $NAMESPACE port-forward svc/kubevision-minio $S3_PORT:9000 &"
  if [[ $DRY_RUN == false ]]; then
    kubectl -n "$NAMESPACE" port-forward svc/kubevision-minio "$S3_PORT:9000" >/dev/null &
    FORWARD_PID=$!
    trap stop_port_forward EXIT
    local attempt
    for attempt in $(seq 30); do
      (exec 3<>"/dev/tcp/127.0.0.1/$S3_PORT") 2>/dev/null && break
      [[ $attempt == 30 ]] && { echo "MinIO's port-forward did not open" >&2; exit 1; }
      sleep 1
    done
  fi
  KUBEVISION_S3_ACCESS_KEY=$(secret_value "$NAMESPACE" kubevision-s3 accessKey)
  KUBEVISION_S3_SECRET_KEY=$(secret_value "$NAMESPACE" kubevision-s3 secretKey)
  export KUBEVISION_S3_ACCESS_KEY KUBEVISION_S3_SECRET_KEY KUBEVISION_S3_ENDPOINT="127.0.0.1:$S3_PORT"
  run "$ROOT/.venv/bin/python" "$ROOT/deploy/kind/upload_samples.py" "$ROOT/examples/project.yaml" \
    "$ROOT/examples/samples"
  stop_port_forward
}

random_key() {
  od -An -tx1 -N16 /dev/urandom | tr -d ' \n'
}

train_and_publish() {
  if ! holds kubectl -n "$PROJECTS" get secret kubevision-api-keys; then
    run kubectl -n "$PROJECTS" create secret generic kubevision-api-keys \
      --from-literal=predictionKey="$(random_key)" --from-literal=trainingKey="$(random_key)"
  fi
  run kubectl -n "$PROJECTS" apply -f "$ROOT/examples/project.yaml" -f "$ROOT/examples/quickstart-iteration.yaml"
  run kubectl -n "$PROJECTS" wait iteration/trees-quickstart --for=jsonpath='{.status.phase}'=Published \
    --timeout=45m
}

print_curl() {
  local uid key
  uid=$(read_from kubectl -n "$PROJECTS" get customvisionproject trees -o 'jsonpath={.metadata.uid}')
  key=$(secret_value "$PROJECTS" kubevision-api-keys predictionKey)
  echo
  echo "The trees project is published. Classify the quickstart's test photo:"
  echo "  curl -X POST $GATEWAY_URL/customvision/v3.0/Prediction/$uid/classify/iterations/trees/image \\"
  echo "    -H 'Prediction-Key: $key' -H 'Content-Type: application/octet-stream' \\"
  echo "    --data-binary @$ROOT/examples/samples/test/test_image.jpg"
}

up() {
  create_cluster
  build_and_load_images
  install_chart
  upload_samples
  train_and_publish
  print_curl
}

down() {
  run kind delete cluster --name "$CLUSTER"
}

main() {
  local command=${1:-}
  [[ ${2:-} == --dry-run ]] && DRY_RUN=true
  case $command in
    up) up ;;
    down) down ;;
    *) echo "usage: $0 up|down [--dry-run]" >&2; exit 2 ;;
  esac
}

exec 3>&1
main "$@"
