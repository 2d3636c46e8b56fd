#!/usr/bin/env python3
"""Render every kustomization under deploy/kubernetes and check the facts the
deployment relies on in the rendered objects (not in the sources):

  - Deployment: --no-migrate, probes (startup + liveness on /livez, readiness
    on /readyz) on the port --http listens on, grace period above the drain
    timeout, requests and limits, worker count from limits.cpu, restricted
    security context with the image's non-root uid, DATABASE_URL_FILE in a
    mounted Secret, a writable /tmp under a read-only root, surge-only rollout
  - migration Job: `stepkit migrate`, same image, same secret, same security
  - PodDisruptionBudget and metrics Service select the Deployment's pods; the
    Service carries the scrape annotations; a ServiceMonitor selects the
    Service and names its port
  - PrometheusRule: the alerts that matter, `promtool check rules` on its
    spec, and (when given a metric list) only metrics StepKit exports
  - KEDA ScaledObject (overlays with the keda component): scales the
    Deployment (which then leaves replicas to the HPA) with a postgresql
    trigger calling the engine's queue_depth() in the Deployment's schema
    (a function the migrations in sql/ create), a positive target, bounds,
    a cooldown, and a TriggerAuthentication with its own Secret

usage: check-kubernetes.py [--promtool PATH] [--metrics FILE]
"""
import argparse
import os
import re
import subprocess
import sys
import tempfile

import yaml

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
KDIR = os.path.join(ROOT, "deploy", "kubernetes")
failures = []
checks = 0


def check(cond, what):
    global checks
    checks += 1
    if not cond:
        failures.append(what)
        print(f"  FAIL {what}")
    return cond


def image_env():
    env = {}
    with open(os.path.join(ROOT, "deploy", "image", "image.env")) as f:
        for line in f:
            line = line.strip()
            if line and not line.startswith("#") and "=" in line:
                k, v = line.split("=", 1)
                env[k] = v
    return env


def render(path):
    out = subprocess.run(["kubectl", "kustomize", path], check=True, capture_output=True, text=True).stdout
    return [d for d in yaml.safe_load_all(out) if d]


def one(objs, kind):
    found = [o for o in objs if o["kind"] == kind]
    return found[0] if len(found) == 1 else None


def selects(selector, labels):
    return all(labels.get(k) == v for k, v in selector.items())


def cpu_cores(q):
    q = str(q)
    return float(q[:-1]) / 1000 if q.endswith("m") else float(q)


def env_of(container):
    return {e["name"]: e for e in container.get("env", [])}


def check_pod_security(spec, container, who, uid):
    psc = spec.get("securityContext", {})
    csc = container.get("securityContext", {})
    check(psc.get("runAsNonRoot") is True, f"{who}: runAsNonRoot")
    check(psc.get("runAsUser") == uid, f"{who}: runAsUser {psc.get('runAsUser')} is the image's uid {uid}")
    check(psc.get("seccompProfile", {}).get("type") == "RuntimeDefault", f"{who}: seccomp RuntimeDefault")
    check(csc.get("allowPrivilegeEscalation") is False, f"{who}: allowPrivilegeEscalation false")
    check(csc.get("readOnlyRootFilesystem") is True, f"{who}: readOnlyRootFilesystem")
    check(csc.get("capabilities", {}).get("drop") == ["ALL"], f"{who}: capabilities drop ALL")
    check(not csc.get("privileged", False), f"{who}: not privileged")
    check(spec.get("automountServiceAccountToken") is False, f"{who}: no service account token")


def check_secret_file(spec, container, who, objs):
    env = env_of(container)
    check("DATABASE_URL" not in env, f"{who}: no DATABASE_URL literal in the environment")
    path = env.get("DATABASE_URL_FILE", {}).get("value", "")
    if not check(path.startswith("/"), f"{who}: DATABASE_URL_FILE set ({path!r})"):
        return None
    vols = {v["name"]: v for v in spec.get("volumes", [])}
    for m in container.get("volumeMounts", []):
        if path.startswith(m["mountPath"].rstrip("/") + "/"):
            vol = vols.get(m["name"], {})
            secret = vol.get("secret")
            if not check(secret is not None, f"{who}: {path} is on a Secret volume"):
                return None
            check(m.get("readOnly") is True, f"{who}: secret mounted read-only")
            rel = path[len(m["mountPath"].rstrip("/")) + 1:]
            keys = [i["key"] for i in secret.get("items", []) if i["path"] == rel]
            check(len(keys) == 1, f"{who}: {rel} maps to one key of Secret {secret['secretName']}")
            rendered = [o for o in objs if o["kind"] == "Secret" and o["metadata"]["name"] == secret["secretName"]]
            if rendered and keys:
                data = {**rendered[0].get("data", {}), **rendered[0].get("stringData", {})}
                check(keys[0] in data, f"{who}: rendered Secret {secret['secretName']} has key {keys[0]}")
            return secret["secretName"]
    check(False, f"{who}: {path} is under no volume mount")
    return None


def arg_value(args, flag):
    for i, a in enumerate(args):
        if a == flag and i + 1 < len(args):
            return args[i + 1]
        if a.startswith(flag + "="):
            return a.split("=", 1)[1]
    return None


def check_overlay(name, objs, opts, ienv):
    uid = int(ienv["IMAGE_UID"])
    dep = one(objs, "Deployment")
    job = one(objs, "Job")
    if not (check(dep is not None, "one Deployment") and check(job is not None, "one migration Job")):
        return
    pod = dep["spec"]["template"]
    spec = pod["spec"]
    c = spec["containers"][0]
    labels = pod["metadata"]["labels"]
    args = c.get("args", [])
    env = env_of(c)
    kinds = {o["kind"] for o in objs}
    if name != "base":
        ns = {o["metadata"].get("namespace") for o in objs if o["kind"] != "Namespace"}
        check(len(ns) == 1 and None not in ns, f"every object in one namespace ({ns})")

    # rollout and capacity
    check(selects(dep["spec"]["selector"]["matchLabels"], labels), "Deployment selector matches its pods")
    ru = dep["spec"].get("strategy", {}).get("rollingUpdate", {})
    check(dep["spec"]["strategy"]["type"] == "RollingUpdate" and ru.get("maxUnavailable") == 0,
          "rolling update with maxUnavailable 0")
    check("--no-migrate" in args, "Deployment runs with --no-migrate (the Job migrates)")

    # HTTP port and probes
    listen = arg_value(args, "--http") or ""
    port = int(listen.rsplit(":", 1)[1]) if ":" in listen else None
    ports = {p["name"]: p["containerPort"] for p in c.get("ports", [])}
    check(port is not None and ports.get("http") == port, f"--http {listen} is the container port 'http' ({ports})")
    for probe, path in (("startupProbe", "/livez"), ("livenessProbe", "/livez"), ("readinessProbe", "/readyz")):
        p = c.get(probe, {}).get("httpGet", {})
        check(p.get("path") == path and p.get("port") in ("http", port), f"{probe} GET {path} on the http port")
    sp = c.get("startupProbe", {})
    check(sp.get("periodSeconds", 10) * sp.get("failureThreshold", 3) >= 30, "startup probe allows 30 s or more")

    # drain: grace above the shutdown timeout
    drain_ms = int(env.get("STEPKIT_SHUTDOWN_TIMEOUT_MS", {}).get("value", "25000"))
    grace = spec.get("terminationGracePeriodSeconds", 30)
    check(grace * 1000 >= drain_ms + 5000,
          f"terminationGracePeriodSeconds {grace} s exceeds the drain timeout {drain_ms} ms by 5 s or more")

    # resources and workers
    res = c.get("resources", {})
    for kind in ("requests", "limits"):
        for r in ("cpu", "memory"):
            check(r in res.get(kind, {}), f"resources.{kind}.{r} set")
    if "limits" in res and "requests" in res:
        check(cpu_cores(res["requests"]["cpu"]) <= cpu_cores(res["limits"]["cpu"]), "cpu request <= limit")
    wref = env.get("STEPKIT_WORKERS", {}).get("valueFrom", {}).get("resourceFieldRef", {})
    check(wref.get("resource") == "limits.cpu" and wref.get("containerName") == c["name"],
          "STEPKIT_WORKERS follows the container's CPU limit")

    # security and the secret
    check_pod_security(spec, c, "Deployment", uid)
    secret = check_secret_file(spec, c, "Deployment", objs)
    mounts = {m["mountPath"] for m in c.get("volumeMounts", [])}
    check("/tmp" in mounts, "a writable /tmp under the read-only root")

    # the migration Job
    jspec = job["spec"]["template"]["spec"]
    jc = jspec["containers"][0]
    cmd = jc.get("command", []) + jc.get("args", [])
    check(cmd[-1:] == ["migrate"] and cmd[0].endswith("/stepkit"), f"Job runs `stepkit migrate` ({cmd})")
    check(jc["image"] == c["image"], f"Job image {jc['image']} is the Deployment's {c['image']}")
    check(jspec.get("restartPolicy") in ("Never", "OnFailure"), "Job restartPolicy Never/OnFailure")
    check(job["spec"].get("backoffLimit") is not None, "Job backoffLimit set")
    check(job["metadata"].get("labels", {}).get("app.kubernetes.io/component") == "migrate",
          "the Job can be applied alone (-l app.kubernetes.io/component=migrate)")
    check_pod_security(jspec, jc, "Job", uid)
    check(check_secret_file(jspec, jc, "Job", objs) == secret, "Job reads the same Secret")
    check(not c["image"].endswith(":latest") and ":" in c["image"], f"pinned image tag ({c['image']})")

    # budget and service
    pdb = one(objs, "PodDisruptionBudget")
    if check(pdb is not None, "one PodDisruptionBudget"):
        check(selects(pdb["spec"]["selector"]["matchLabels"], labels), "PDB selects the pods")
        mu = pdb["spec"].get("maxUnavailable")
        check(mu is not None or pdb["spec"].get("minAvailable") is not None, "PDB has a bound")
    svc = [o for o in objs if o["kind"] == "Service"]
    if check(len(svc) == 1, "one metrics Service"):
        s = svc[0]
        check(selects(s["spec"]["selector"], labels), "Service selects the pods")
        ann = s["metadata"].get("annotations", {})
        check(ann.get("prometheus.io/scrape") == "true" and ann.get("prometheus.io/port") == str(port)
              and ann.get("prometheus.io/path") == "/metrics", "Service scrape annotations name the port and /metrics")
        sp_ = s["spec"]["ports"][0]
        check(sp_["targetPort"] in ("http", port), "Service targets the http port")
        sm = one(objs, "ServiceMonitor")
        if sm is not None:
            check(selects(sm["spec"]["selector"]["matchLabels"], s["metadata"]["labels"]), "ServiceMonitor selects the Service")
            check(sm["spec"]["endpoints"][0]["port"] == sp_["name"], "ServiceMonitor names the Service's port")

    rule = one(objs, "PrometheusRule")
    if rule is not None:
        check_rules(rule, opts)
    elif name == "overlays/production":
        check(False, "production renders the PrometheusRule")
    so = [o for o in objs if o["kind"] == "ScaledObject"]
    if so:
        check(len(so) == 1, "one ScaledObject")
        check_keda(so[0], dep, objs, secret, args, env)
    elif name.endswith("-keda"):
        check(False, f"{name} renders a ScaledObject")
    return kinds


def sql_functions():
    names = set()
    for f in sorted(os.listdir(os.path.join(ROOT, "sql"))):
        if f.endswith(".sql"):
            with open(os.path.join(ROOT, "sql", f)) as src:
                names.update(re.findall(r"CREATE (?:OR REPLACE )?FUNCTION (\w+)\(", src.read()))
    return names


def check_keda(so, dep, objs, dep_secret, args, env):
    spec = so["spec"]
    ref = spec.get("scaleTargetRef", {})
    check(ref.get("kind", "Deployment") == "Deployment" and ref.get("name") == dep["metadata"]["name"],
          f"ScaledObject scales the Deployment ({ref})")
    check(ref.get("apiVersion", "apps/v1") == "apps/v1", "scaleTargetRef apiVersion apps/v1")
    check(so["metadata"].get("namespace") == dep["metadata"].get("namespace"), "ScaledObject in the Deployment's namespace")
    check("replicas" not in dep["spec"], "the Deployment leaves replicas to KEDA's HPA")
    lo, hi = spec.get("minReplicaCount", 0), spec.get("maxReplicaCount", 100)
    check(1 <= lo <= hi, f"replica bounds 1 <= {lo} <= {hi} (cron fires from a running worker)")
    check(spec.get("cooldownPeriod", 300) >= 60, "cooldownPeriod of a minute or more")
    down = spec.get("advanced", {}).get("horizontalPodAutoscalerConfig", {}).get("behavior", {}).get("scaleDown", {})
    check(down.get("stabilizationWindowSeconds", 300) >= 60, "scale-down stabilization window of a minute or more")
    trig = [t for t in spec.get("triggers", []) if t.get("type") == "postgresql"]
    if not check(len(trig) == 1, "one postgresql trigger"):
        return
    md = trig[0].get("metadata", {})
    schema = arg_value(args, "--schema") or env.get("STEPKIT_SCHEMA", {}).get("value") or "stepkit"
    m = re.fullmatch(r"\s*SELECT\s+(\w+)\.(\w+)\((.*)\)\s*", md.get("query", ""), re.S)
    check(m is not None and m.group(1) == schema, f"trigger query reads the Deployment's schema {schema}: {md.get('query')}")
    check(m is not None and m.group(2) == "queue_depth" and "queue_depth" in sql_functions(),
          "trigger query calls queue_depth(), created by a migration in sql/")
    try:
        target = float(md.get("targetQueryValue", "0"))
    except ValueError:
        target = 0
    check(target > 0, f"targetQueryValue {md.get('targetQueryValue')} > 0")
    check(float(md.get("activationTargetQueryValue", "0")) >= 0, "activationTargetQueryValue >= 0")
    check("connectionFromEnv" not in md and "passwordFromEnv" not in md,
          "the scaler's credentials come from a TriggerAuthentication, not the pod's environment")
    auth = trig[0].get("authenticationRef", {}).get("name")
    ta = [o for o in objs if o["kind"] == "TriggerAuthentication" and o["metadata"]["name"] == auth]
    if check(len(ta) == 1, f"authenticationRef {auth} is rendered"):
        refs = {r["parameter"]: r for r in ta[0]["spec"].get("secretTargetRef", [])}
        c = refs.get("connection")
        check(c is not None and c.get("name") and c.get("key"), "TriggerAuthentication: connection from a Secret key")
        check(c is not None and c.get("name") != dep_secret,
              "the scaler has its own Secret (a role with EXECUTE on queue_depth only)")
        check(ta[0]["metadata"].get("namespace") == dep["metadata"].get("namespace"), "TriggerAuthentication in the namespace")


def check_rules(rule, opts):
    alerts = {r["alert"]: r for g in rule["spec"]["groups"] for r in g["rules"] if "alert" in r}
    for a in ("StepKitNoReadyWorkers", "StepKitOldestReadyItemTooOld", "StepKitRunsFailing", "StepKitWorkerRestarts"):
        check(a in alerts, f"alert {a}")
    for a, r in alerts.items():
        check("severity" in r.get("labels", {}), f"{a}: severity label")
        check("summary" in r.get("annotations", {}), f"{a}: summary")
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "stepkit.rules.yaml")
        with open(path, "w") as f:
            yaml.safe_dump(rule["spec"], f)
        p = subprocess.run([opts.promtool, "check", "rules", path], capture_output=True, text=True)
        print("  promtool check rules: " + " | ".join(l.strip() for l in (p.stdout + p.stderr).splitlines() if l.strip()))
        check(p.returncode == 0, "promtool check rules")
        # The alerts fire on what they are for (tests/deploy/alerts-test.yaml).
        test = os.path.join(tmp, "alerts-test.yaml")
        with open(os.path.join(ROOT, "tests", "deploy", "alerts-test.yaml")) as src, open(test, "w") as dst:
            dst.write(src.read())
        p = subprocess.run([opts.promtool, "test", "rules", test], capture_output=True, text=True, cwd=tmp)
        out = (p.stdout + p.stderr).strip()
        print("  promtool test rules: " + (out.splitlines()[-1] if p.returncode == 0 else "\n" + out))
        check(p.returncode == 0, "promtool test rules (tests/deploy/alerts-test.yaml)")
    if opts.metrics:
        known = set()
        with open(opts.metrics) as f:
            for line in f:
                m = re.match(r"\| `(stepkit_[a-z0-9_]+)` \| (\w+) \|", line)
                if m:
                    known.add(m.group(1))
                    if m.group(2) == "histogram":
                        known.update(m.group(1) + s for s in ("_bucket", "_sum", "_count"))
        check(len(known) > 10, f"metric names read from {opts.metrics}")
        for a, r in alerts.items():
            for m in set(re.findall(r"\bstepkit_[a-z0-9_]+", r["expr"])):
                check(m in known, f"{a}: {m} is a metric StepKit exports")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--promtool", default="promtool")
    ap.add_argument("--metrics", help="the metrics reference (stepkit-master --help-metrics)")
    opts = ap.parse_args()
    ienv = image_env()
    paths = ["base"] + sorted(
        os.path.join("overlays", d) for d in os.listdir(os.path.join(KDIR, "overlays")))
    for rel in paths:
        print(f"== {rel}")
        before = len(failures)
        objs = render(os.path.join(KDIR, rel))
        kinds = check_overlay(rel, objs, opts, ienv)
        print(f"  {len(objs)} objects ({', '.join(sorted(kinds or []))}): "
              + ("ok" if len(failures) == before else f"{len(failures) - before} failure(s)"))
    print(f"kubernetes: {checks} checks on {len(paths)} renderings, {len(failures)} failure(s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
