// The web page of the service: plain ES modules, no build step, nothing loaded from elsewhere.

import { ApiError, TERMINAL, followEvents, request } from "/web/api.js";

const $ = (id) => document.getElementById(id);
const KEY_STORAGE = "sadtalker.apiKey";
const RECENT_JOBS = 10;

const state = { follow: null, videoUrl: null, job: null };

function apiKey() {
  return $("api-key").value.trim();
}

const api = (path, options) => request(apiKey(), path, options);

// ---------- messages

function showError(err) {
  const box = $("error");
  box.replaceChildren();
  const code = document.createElement("code");
  code.textContent = err.code || "error";
  box.append(code, " ", err.message || String(err));
  if (err.code === "unauthorized") box.append(" Enter a valid API key at the top of the page.");
  if (err.suggestion) box.append(` Try: ${err.suggestion}`);
  box.hidden = false;
}

function clearError() {
  $("error").hidden = true;
}

// ---------- files and previews

function setupDrop(dropId, inputId, onFile) {
  const drop = $(dropId);
  const input = $(inputId);
  drop.addEventListener("dragover", (e) => {
    e.preventDefault();
    drop.classList.add("over");
  });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => {
    e.preventDefault();
    drop.classList.remove("over");
    if (e.dataTransfer.files.length) {
      input.files = e.dataTransfer.files;
      input.dispatchEvent(new Event("change"));
    }
  });
  input.addEventListener("change", () => {
    if (input.files.length) onFile(input.files[0]);
  });
}

function previewImage(file) {
  const img = $("image-preview");
  if (img.src) URL.revokeObjectURL(img.src);
  img.src = URL.createObjectURL(file);
  img.hidden = false;
  $("image-name").textContent = `${file.name} (${formatBytes(file.size)})`;
  autoPreflight();
}

function previewAudio(file) {
  const audio = $("audio-preview");
  if (audio.src) URL.revokeObjectURL(audio.src);
  audio.src = URL.createObjectURL(file);
  audio.hidden = false;
  $("audio-name").textContent = `${file.name} (${formatBytes(file.size)})`;
  autoPreflight();
}

function formatBytes(n) {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(0)} KB`;
  return `${(n / 1024 / 1024).toFixed(1)} MB`;
}

function jobForm() {
  const image = $("image-input").files[0];
  const audio = $("audio-input").files[0];
  if (!image || !audio) throw new ApiError("validation_error", "Pick a portrait image and a speech audio file.", 0);
  const form = new FormData();
  form.append("image", image);
  form.append("audio", audio);
  form.append("preprocess", $("preprocess").value);
  form.append("size", $("size").value);
  form.append("enhancer", $("enhancer").value);
  form.append("pose_style", $("pose-style").value || "0");
  form.append("expression_scale", $("expression-scale").value || "1");
  form.append("still", $("still").checked ? "true" : "false");
  return form;
}

// ---------- preflight

function autoPreflight() {
  if ($("image-input").files.length && $("audio-input").files.length && apiKey()) runPreflight();
}

async function runPreflight() {
  clearError();
  try {
    const response = await api("/v1/preflight", { method: "POST", body: jobForm() });
    renderPreflight(await response.json());
  } catch (err) {
    showError(err);
  }
}

function renderPreflight(report) {
  $("preflight").hidden = false;
  $("preflight").classList.toggle("bad", !report.ok);
  $("preflight-verdict").textContent = report.ok
    ? "Ready: a job with these inputs would run."
    : "This job would fail:";
  const crop = $("face-crop");
  crop.hidden = !(report.face && report.face.preview);
  if (!crop.hidden) crop.src = report.face.preview;
  const items = [];
  for (const problem of report.errors || []) items.push(problemItem(problem, "problem"));
  if (report.face) {
    const score = report.face.score == null ? "" : `, confidence ${Number(report.face.score).toFixed(2)}`;
    const box = (report.face.box || []).map((v) => Math.round(v)).join(", ");
    items.push(textItem(`Face found at [${box}]${score} (${report.face.detector || "detector"})`));
  }
  if (report.audio) {
    items.push(textItem(`Audio: ${Number(report.audio.duration_s).toFixed(2)} s at ${report.audio.sample_rate} Hz`));
  }
  for (const warning of report.warnings || []) items.push(problemItem(warning, "warning"));
  $("preflight-details").replaceChildren(...items);
}

function textItem(text) {
  const li = document.createElement("li");
  li.textContent = text;
  return li;
}

function problemItem(problem, kind) {
  const li = document.createElement("li");
  li.className = kind;
  const code = document.createElement("code");
  code.textContent = problem.code;
  li.append(code, ` ${problem.message}`);
  if (problem.suggestion) li.append(` Try: ${problem.suggestion}`);
  return li;
}

// ---------- jobs

async function submitJob(event) {
  event.preventDefault();
  clearError();
  const button = $("submit-button");
  button.disabled = true;
  try {
    const response = await api("/v1/jobs", { method: "POST", body: jobForm() });
    trackJob(await response.json());
    refreshJobs();
  } catch (err) {
    showError(err);
  } finally {
    button.disabled = false;
  }
}

function describe(job) {
  if (job.status === "queued") {
    return job.queue_position == null ? "Queued" : `Queued: position ${job.queue_position}`;
  }
  if (job.status === "running") return `Running: ${job.progress.stage || "starting"}`;
  if (job.status === "succeeded") return "Done";
  if (job.status === "failed") return "Failed";
  return "Canceled";
}

function progressDetails(job) {
  const p = job.progress || {};
  const parts = [];
  if (p.frames_total) parts.push(`${p.frames_done || 0} of ${p.frames_total} frames`);
  if (job.status === "running") parts.push(p.eta_s != null ? `about ${Math.ceil(p.eta_s)} s left` : "time left unknown");
  if (job.error) parts.push(`${job.error.code}: ${job.error.message}`);
  return parts.join(" · ");
}

function renderJob(job) {
  state.job = job;
  $("job").hidden = false;
  $("job-id").textContent = job.id;
  $("job-status").textContent = describe(job);
  $("job-status").dataset.status = job.status;
  const percent = job.status === "succeeded" ? 100 : Number((job.progress || {}).percent || 0);
  $("progress-fill").style.width = `${percent}%`;
  $("progress-bar").setAttribute("aria-valuenow", String(Math.round(percent)));
  $("progress-text").textContent = `${percent.toFixed(0)}%  ${progressDetails(job)}`;
  $("cancel-button").hidden = TERMINAL.has(job.status);
  if (job.status === "failed" && job.error) showError(job.error);
}

async function trackJob(job) {
  if (state.follow) state.follow.abort();
  const follow = new AbortController();
  state.follow = follow;
  $("result").hidden = true;
  renderJob(job);
  try {
    const final = TERMINAL.has(job.status) ? job : await followEvents(apiKey(), job.id, renderJob, follow.signal);
    if (final && final.status === "succeeded" && state.follow === follow) await showResult(final);
  } catch (err) {
    if (err.name !== "AbortError") showError(err);
  }
  refreshJobs();
}

// True when the video URL needs the key header (an API link without a signature, from an older service).
function servedByApi(job) {
  const url = job.result && job.result.video_url;
  if (!url) return true;
  const parsed = new URL(url, location.href);
  return parsed.pathname.endsWith(`/v1/jobs/${job.id}/video`) && !parsed.searchParams.has("sig");
}

async function showResult(job) {
  const url = job.result && job.result.video_url;
  if (state.videoUrl) URL.revokeObjectURL(state.videoUrl);
  state.videoUrl = null;
  let src = url;
  if (servedByApi(job)) {
    // a <video src> cannot send the key header: fetch the file, play it from memory
    const response = await api(`/v1/jobs/${encodeURIComponent(job.id)}/video`);
    src = state.videoUrl = URL.createObjectURL(await response.blob());
  }
  const video = $("result-video");
  video.poster = (job.result && job.result.poster_url) || "";  // the middle frame until it plays
  video.src = src;
  const link = $("download-link");
  link.href = src;
  link.download = `${job.id}.mp4`;
  const r = job.result || {};
  $("result-info").textContent = `${r.width}×${r.height}, ${Number(r.duration_s).toFixed(1)} s, ${formatBytes(r.bytes || 0)}`;
  $("result").hidden = false;
}

async function cancelJob() {
  if (!state.job) return;
  clearError();
  try {
    const response = await api(`/v1/jobs/${encodeURIComponent(state.job.id)}/cancel`, { method: "POST" });
    renderJob(await response.json());
  } catch (err) {
    showError(err);
  }
}

async function refreshJobs() {
  if (!apiKey()) return;
  try {
    const response = await api(`/v1/jobs?limit=${RECENT_JOBS}`);
    const body = await response.json();
    renderJobList(Array.isArray(body) ? body : body.data || []);
  } catch (err) {
    showError(err);
  }
}

function renderJobList(jobs) {
  const rows = jobs.map((job) => {
    const tr = document.createElement("tr");
    tr.dataset.jobId = job.id;
    const cells = [job.id, describe(job), new Date(job.created_at).toLocaleString(),
      job.status === "running" ? `${Number(job.progress.percent).toFixed(0)}%` : ""];
    for (const text of cells) {
      const td = document.createElement("td");
      td.textContent = text;
      tr.append(td);
    }
    tr.addEventListener("click", () => trackJob(job));
    return tr;
  });
  if (!rows.length) rows.push(textRow("No jobs yet."));
  $("jobs-list").replaceChildren(...rows);
}

function textRow(text) {
  const tr = document.createElement("tr");
  const td = document.createElement("td");
  td.colSpan = 4;
  td.className = "muted";
  td.textContent = text;
  tr.append(td);
  return tr;
}

// ---------- API key

// ---------- what the service can run

// Options the loaded models cannot run are greyed out: /readyz lists "capabilities" (sizes, enhancers,
// preprocess modes); while the models load it lists none yet, so it is asked again.
const CAPABILITY_SELECTS = { size: "sizes", enhancer: "enhancers", preprocess: "preprocess" };
const CAPABILITY_RETRY_MS = 2000;

function applyCapabilities(caps) {
  for (const [id, key] of Object.entries(CAPABILITY_SELECTS)) {
    const select = $(id);
    const allowed = new Set((caps[key] || []).map(String));
    for (const option of select.options) {
      option.disabled = !allowed.has(option.value);
      option.title = option.disabled ? "not loaded on this service" : "";
    }
    if (select.selectedOptions[0] && select.selectedOptions[0].disabled) {
      const usable = [...select.options].find((option) => !option.disabled);
      if (usable) select.value = usable.value;
    }
  }
}

async function loadCapabilities() {
  let caps = null;
  try {
    const body = await (await fetch("/readyz")).json();
    caps = body.capabilities || (body.error && body.error.capabilities) || null;
  } catch {
    // not reachable yet: asked again below
  }
  if (caps) applyCapabilities(caps);
  else setTimeout(loadCapabilities, CAPABILITY_RETRY_MS);
}

function setupKey() {
  const input = $("api-key");
  const remember = $("remember-key");
  const saved = localStorage.getItem(KEY_STORAGE);
  if (saved) {
    input.value = saved;
    remember.checked = true;
  }
  const store = () => {
    if (remember.checked && apiKey()) localStorage.setItem(KEY_STORAGE, apiKey());
    else localStorage.removeItem(KEY_STORAGE);
  };
  input.addEventListener("change", () => {
    store();
    clearError();
    refreshJobs();
  });
  remember.addEventListener("change", store);
  $("key-form").addEventListener("submit", (e) => e.preventDefault());
}

setupKey();
setupDrop("image-drop", "image-input", previewImage);
setupDrop("audio-drop", "audio-input", previewAudio);
$("job-form").addEventListener("submit", submitJob);
$("preflight-button").addEventListener("click", runPreflight);
$("cancel-button").addEventListener("click", cancelJob);
$("refresh-jobs").addEventListener("click", refreshJobs);
refreshJobs();
loadCapabilities();
