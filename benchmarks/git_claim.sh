#!/usr/bin/env bash
# The git-CLI baseline for benchmark (a): claim one task of a gitclaim store
# with plain git, the way a careful shell script would.
#
#   git_claim.sh CLONE TASK_ID AGENT [REMOTE] [BRANCH]
#
# It never touches the clone's working tree, index or HEAD: the task file is
# read with cat-file, the new tree is built in a private temporary index
# (GIT_INDEX_FILE) and the commit with commit-tree. Steps, like gitclaim's:
#   1. fetch the store branch into refs/remotes/REMOTE/BRANCH
#   2. read tasks/<xx>/<id>.toml at the fetched tip; refuse unless todo/backlog
#   3. set state = "active", append a [claim] table (holder, claimed_at)
#   4. one commit on the tip (subject + Gitclaim-* trailers, author = agent)
#   5. push it without force; if the remote refuses (the branch moved), go to 1
# Prints "retries=N" on success. Exit 5: not claimable; 9: gave up after 5 tries.
set -euo pipefail

clone=$1 id=$2 agent=$3 remote=${4:-origin} branch=${5:-gitclaim}
cd "$clone"
gitdir=$(git rev-parse --git-dir)
fan=$(printf '%s' "$id" | sha1sum)
path="tasks/${fan:0:2}/$id.toml"
export GIT_INDEX_FILE="$gitdir/gitclaim-bench-index.$$"
trap 'rm -f "$GIT_INDEX_FILE"' EXIT
export GIT_AUTHOR_NAME="$agent" GIT_AUTHOR_EMAIL="$agent@gitclaim.invalid"
export GIT_COMMITTER_NAME="$agent" GIT_COMMITTER_EMAIL="$agent@gitclaim.invalid"

for attempt in 0 1 2 3 4; do
    git fetch -q "$remote" "+refs/heads/$branch:refs/remotes/$remote/$branch"
    base=$(git rev-parse --verify -q "refs/remotes/$remote/$branch^{commit}")
    old=$(git cat-file blob "$base:$path")
    state=$(sed -n 's/^state = "\(.*\)"$/\1/p' <<<"$old")
    if [[ $state != todo && $state != backlog ]]; then
        echo "$id is $state, not claimable" >&2
        exit 5
    fi
    now=$(date -u +%Y-%m-%dT%H:%M:%SZ)
    blob=$( {
        sed 's/^state = .*/state = "active"/' <<<"$old"
        printf '\n[claim]\nholder = "%s"\nclaimed_at = %s\n' "$agent" "$now"
    } | git hash-object -w --stdin)
    git read-tree "$base"
    git update-index --cacheinfo "100644,$blob,$path"
    tree=$(git write-tree)
    commit=$(git commit-tree "$tree" -p "$base" -m "claim $id by $agent" \
        -m "Gitclaim-Op: claim
Gitclaim-Task: $id
Gitclaim-Agent: $agent
Gitclaim-From: $state
Gitclaim-To: active")
    if git push -q "$remote" "$commit:refs/heads/$branch" 2>/dev/null; then
        echo "retries=$attempt"
        exit 0
    fi
    sleep "$(printf "0.%03d" $((RANDOM % 100 + 5)))"  # jittered backoff, then re-fetch and re-check
done
echo "gave up: the branch kept moving" >&2
exit 9
