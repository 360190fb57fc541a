#!/usr/bin/env python3
"""Prints the JIT groups, their memberships and the IAM policies that the Google Cloud
emulator holds, from its state document (GET /emulator/v1/state) on standard input."""
import json
import sys

state = json.load(sys.stdin)
for group in state["groups"]:
    if not group["email"].startswith("jit."):
        continue
    print("Cloud Identity group %s (%s)" % (group["email"], group["name"]))
    for membership in group["memberships"]:
        expires = membership.get("expireTime") or "never"
        print("  member %-22s expires %s" % (membership["member"], expires))
    if not group["memberships"]:
        print("  no members")
for resource, policy in sorted(state["policies"].items()):
    print("IAM policy of %s (version %s)" % (resource, policy.get("version", 1)))
    for binding in policy.get("bindings", []):
        condition = binding.get("condition")
        suffix = "  if %s" % condition.get("title", condition["expression"]) if condition else ""
        print("  %-34s %s%s" % (binding["role"], ", ".join(binding["members"]), suffix))
