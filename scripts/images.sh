#!/usr/bin/env bash
# Builds the project's images from deploy/Dockerfile (docs/images.md):
#   <registry>/traefik-datadog-relay:<version> and <registry>/traefik-datadog-plugin:<version>
# usage: scripts/images.sh [--registry R] [--version V] [--platforms P,...] [--push] [--dry-run] [-- BUILD-FLAGS...]
#   (nothing)          this machine's platform, into the local engine (docker build, BuildKit)
#   --push             then pushes both tags (log in to the registry first)
#   --platforms P,...  docker buildx on a docker-container builder, e.g. linux/amd64,linux/arm64;
#                      several platforms are one manifest list per tag, so they need --push
#   --dry-run          prints the commands instead of running them
# Defaults: ghcr.io/traefik-datadog-plugin, the version in Cargo.toml. $DOCKER picks the client.
set -euo pipefail
cd "$(dirname "$0")/.."

registry=ghcr.io/traefik-datadog-plugin
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n 1)
platforms=""
push=0
dry=0
extra=()
while (($#)); do
  case "$1" in
    --registry) registry=${2:?}; shift 2 ;;
    --version) version=${2:?}; shift 2 ;;
    --platforms) platforms=${2:?}; shift 2 ;;
    --push) push=1; shift ;;
    --dry-run) dry=1; shift ;;
    --) shift; extra=("$@"); break ;;
    -h | --help) sed -n '2,11p' "$0"; exit 0 ;;
    *) echo "images.sh: unknown argument $1 (--help)" >&2; exit 2 ;;
  esac
done
if [[ $platforms == *,* && $push == 0 ]]; then
  echo "images.sh: several platforms make a manifest list, which only a registry holds: add --push" >&2
  exit 2
fi

docker=${DOCKER:-docker}
# The labels name the commit; its time, not the clock's, keeps a rebuild of it identical.
revision=$(git rev-parse HEAD 2>/dev/null || echo unknown)
created=$(git log -1 --format=%cI 2>/dev/null || echo unknown)
args=(-f deploy/Dockerfile --build-arg "VERSION=$version" --build-arg "REVISION=$revision"
  --build-arg "CREATED=$created")

run() {
  if ((dry)); then
    echo "$*"
  else
    "$@"
  fi
}

if [[ -z $platforms ]]; then
  for target in relay plugin; do
    run env DOCKER_BUILDKIT=1 "$docker" build "${args[@]}" --target "$target" \
      -t "$registry/traefik-datadog-$target:$version" "${extra[@]}" .
  done
  if ((push)); then
    for target in relay plugin; do
      run "$docker" push "$registry/traefik-datadog-$target:$version"
    done
  fi
else
  # The Rust stages run once, on this machine's platform, and cross-compile the relay
  # (deploy/Dockerfile): no emulation is needed for any target platform.
  builder=tdp-images
  if ((dry)) || ! "$docker" buildx inspect "$builder" >/dev/null 2>&1; then
    run "$docker" buildx create --name "$builder" --driver docker-container
  fi
  output=--load
  ((push)) && output=--push
  for target in relay plugin; do
    run "$docker" buildx build --builder "$builder" --platform "$platforms" "${args[@]}" --target "$target" \
      -t "$registry/traefik-datadog-$target:$version" "$output" "${extra[@]}" .
  done
fi
