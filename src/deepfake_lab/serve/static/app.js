// deepfake-lab page: uploads each dropped file to /api/v1/detect and shows the answer.
// Everything from a file or a server answer is shown with textContent, never as HTML.
"use strict";

const $ = (sel) => document.querySelector(sel);
const keyInput = $("#api-key");
keyInput.value = sessionStorage.getItem("deepfake-lab-key") || "";
keyInput.addEventListener("change", () => sessionStorage.setItem("deepfake-lab-key", keyInput.value));

function headers() {
  return keyInput.value ? { "X-API-Key": keyInput.value } : {};
}

function say(text) { $("#status").textContent = text; }

async function start() {
  try {
    const health = await (await fetch("/healthz")).json();
    $("#key-label").hidden = !health.api_key_required;
    for (const m of health.models) {
      const opt = document.createElement("option");
      opt.value = m.id;
      opt.textContent = `${m.name} (${m.id})${m.calibrated ? "" : ", uncalibrated"}`;
      $("#model").appendChild(opt);
    }
  } catch (err) {
    say("The server does not answer: " + err);
  }
}

const VERDICTS = {
  fake: "Likely synthetic or manipulated",
  real: "No sign of manipulation found by this detector",
  uncertain: "Uncertain: the detector cannot tell",
  no_face: "No face found to score",
  error: "Could not be read",
  skipped: "Not scanned",
};

function pct(p) { return (100 * p).toFixed(1) + "%"; }

function newCard(name) {
  const card = $("#card").content.firstElementChild.cloneNode(true);
  card.querySelector(".name").textContent = name;
  $("#results").prepend(card);
  return card;
}

function addPicture(card, src, alt, cls) {
  const img = document.createElement("img");
  img.src = src;
  img.alt = alt;
  if (cls) img.className = cls;
  card.querySelector(".pictures").appendChild(img);
}

function fill(card, r) {
  const verdict = card.querySelector(".verdict");
  verdict.className = "verdict " + r.label;
  verdict.textContent = VERDICTS[r.label] || r.label;
  const parts = [];
  const scored = r.probability !== null && r.probability !== undefined;
  card.querySelector(".bar").hidden = !scored;  // an empty bar would read as P(fake) 0
  if (scored) {
    parts.push(`P(fake) ${pct(r.probability)} (threshold ${pct(r.threshold)})`);
    card.querySelector(".fill").style.width = pct(r.probability);
    card.querySelector(".mark").style.left = pct(r.threshold);
  }
  if (r.reason) parts.push(r.reason);
  if (r.error) parts.push(r.error);
  if (r.faces) parts.push(`${r.faces.length} face(s) scored`);
  if (r.frames !== undefined) parts.push(`${r.frames} frames, ${r.tracks ? r.tracks.length : 0} face track(s)`);
  parts.push("model " + r.model);
  card.querySelector(".detail").textContent = parts.join(" · ");
  for (const [i, url] of (r.explain || []).entries()) {
    addPicture(card, url, `Grad-CAM heatmap of face ${i + 1}`, "face");
  }
  const dl = card.querySelector(".provenance dl");
  const prov = r.provenance || {};
  const meta = prov.metadata || {};
  const c2pa = prov.c2pa;
  const rows = [
    ["Provenance", prov.verdict || "not read"],
    ["Watermark (this tool)", r.watermark === null || r.watermark === undefined ? "not read" : r.watermark ? "found" : "none"],
    ["Fingerprint", r.watermark_fingerprint || "-"],
    ["Metadata AI tag", meta.ai_generated ? "yes (a tag, not proof)" : "none"],
    ["C2PA", c2pa ? `${c2pa.valid ? "valid" : "not valid"}${c2pa.ai_generated ? ", AI-generated" : ""}` : "none"],
  ];
  for (const [k, v] of rows) {
    const dt = document.createElement("dt");
    dt.textContent = k;
    const dd = document.createElement("dd");
    dd.textContent = v;
    dl.append(dt, dd);
  }
  card.querySelector(".raw pre").textContent = JSON.stringify(r, null, 2);
}

async function fail(card, res) {
  let detail = res.statusText;
  try { detail = (await res.json()).detail || detail; } catch (_) { /* not JSON */ }
  const verdict = card.querySelector(".verdict");
  verdict.className = "verdict error";
  verdict.textContent = `Refused (${res.status})`;
  card.querySelector(".detail").textContent = detail;
}

async function follow(card, job) {
  try {
    await poll(card, job);
  } catch (err) {  // the server went away: say so on the card instead of "Scanning" forever
    card.querySelector(".progress").hidden = true;
    const verdict = card.querySelector(".verdict");
    verdict.className = "verdict error";
    verdict.textContent = "Lost contact with the server";
    card.querySelector(".detail").textContent = String(err);
  }
}

async function poll(card, job) {
  const bar = card.querySelector(".progress");
  bar.hidden = false;
  for (;;) {
    await new Promise((ok) => setTimeout(ok, 1000));
    const res = await fetch(job.url, { headers: headers() });
    if (!res.ok) return fail(card, res);
    const j = await res.json();
    const p = j.progress || {};
    if (p.expected) bar.querySelector("progress").value = (100 * p.frames) / p.expected;
    bar.querySelector("span").textContent = `${j.status}${p.frames !== undefined ? ", frame " + p.frames + (p.expected ? " of " + p.expected : "") : ""}`;
    if (j.status === "done") {
      bar.hidden = true;
      fill(card, j.result);
      if (j.result.timeline) {
        const pic = await fetch(j.result.timeline, { headers: headers() });
        if (pic.ok) addPicture(card, URL.createObjectURL(await pic.blob()), "score timeline", "timeline");
      }
      return;
    }
    if (j.status === "error") {
      bar.hidden = true;
      const verdict = card.querySelector(".verdict");
      verdict.className = "verdict error";
      verdict.textContent = "The scan failed";
      card.querySelector(".detail").textContent = j.error;
      return;
    }
  }
}

async function upload(file) {
  const card = newCard(file.name);
  card.querySelector(".verdict").textContent = "Uploading…";
  const form = new FormData();
  form.append("file", file, file.name);
  form.append("model", $("#model").value);
  if ($("#explain").checked) form.append("explain", "1");
  let res;
  try {
    res = await fetch("/api/v1/detect", { method: "POST", body: form, headers: headers() });
  } catch (err) {
    card.querySelector(".verdict").textContent = "Upload failed: " + err;
    return;
  }
  if (res.status === 202) {
    card.querySelector(".verdict").textContent = "Scanning the video…";
    // Not awaited: the next file uploads while this video waits for its scan.
    follow(card, await res.json());
    return;
  }
  if (!res.ok) return fail(card, res);
  fill(card, await res.json());
}

async function uploadAll(files) {
  const list = Array.from(files);
  say(`${list.length} file(s)`);
  for (const f of list) await upload(f);
  say("");
}

const drop = $("#drop");
drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (e) => {
  e.preventDefault();
  drop.classList.remove("over");
  uploadAll(e.dataTransfer.files);
});
$("#files").addEventListener("change", (e) => uploadAll(e.target.files));
start();
