// The pica serve page: upload or drop an image, ask, show the answer and how it was made.
// No framework, no network beyond this server; every text from the server goes in as textContent.
"use strict";

const config = JSON.parse(document.getElementById("config").textContent);
const $ = (id) => document.getElementById(id);
let chosen = null; // the image File (or Blob) to send

function el(tag, text, cls) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (cls) node.className = cls;
  return node;
}

function setImage(file) {
  if (!file) return;
  if (config.formats.indexOf(file.type) < 0) {
    showError("send a JPEG, PNG or WebP image (got " + (file.type || "an unknown type") + ")");
    return;
  }
  if (file.size > config.maxUploadMb * 1024 * 1024) {
    showError("the image is larger than " + config.maxUploadMb + " MB");
    return;
  }
  chosen = file;
  const preview = $("preview");
  if (preview.src.startsWith("blob:")) URL.revokeObjectURL(preview.src);
  preview.src = URL.createObjectURL(file);
  preview.hidden = false;
  $("drop-text").hidden = true;
  showError(null);
}

function showError(message) {
  $("error").hidden = !message;
  $("error").textContent = message || "";
}

async function tryExample(button) {
  const ex = config.examples.find((e) => e.name === button.dataset.name);
  const response = await fetch(ex.url);
  const blob = await response.blob();
  setImage(new File([blob], ex.name, { type: blob.type }));
  if (ex.question) $("question").value = ex.question;
  $("caption").value = ex.caption || "";
}

async function ask(event) {
  event.preventDefault();
  const question = $("question").value.trim();
  const caption = $("caption").value.trim();
  if (!question) return showError("type a question");
  if (!chosen && !caption) return showError("choose an image or type a caption");
  const form = new FormData();
  if (chosen) form.append("image", chosen, chosen.name || "upload");
  form.append("question", question);
  if (caption) form.append("caption", caption);
  showError(null);
  $("submit").disabled = true;
  $("status").textContent = "Answering…";
  const started = performance.now();
  try {
    const response = await fetch("/v1/answer", { method: "POST", body: form });
    let data;
    try { data = await response.json(); } catch (e) { data = { error: "HTTP " + response.status }; }
    if (!response.ok) throw new Error(data.error || "HTTP " + response.status);
    render(data);
    $("status").textContent = "Answered in " + ((performance.now() - started) / 1000).toFixed(2) + " s.";
  } catch (e) {
    showError(e.message);
    $("status").textContent = "";
  } finally {
    $("submit").disabled = false;
  }
}

function fill(tbody, rows) {
  tbody.replaceChildren(...rows.map((cells) => {
    const tr = el("tr");
    cells.forEach((c) => tr.appendChild(el("td", c)));
    return tr;
  }));
}

function render(data) {
  $("result").hidden = false;
  $("answer").textContent = data.answer;
  $("raw").textContent = JSON.stringify(data.raw);
  $("logprob").textContent = data.logprob === null ? "n/a" : data.logprob.toFixed(3);
  $("used-caption").textContent = data.caption;
  $("caption").value = data.caption; // editable: fix it and ask again
  fill($("seconds").tBodies[0], Object.entries(data.seconds).map(([k, v]) => [k, v.toFixed(3) + " s"]));
  const votes = {};
  data.candidates.forEach((c) => { votes[c.answer] = (votes[c.answer] || 0) + 1; });
  $("chooser").textContent = data.candidates.length > 1 ? "(chosen by " + config.choose + ")" : "";
  fill($("candidates").tBodies[0], data.candidates.map((c) => [
    c.answer, JSON.stringify(c.raw), c.logprob === null ? "n/a" : c.logprob.toFixed(3), votes[c.answer],
  ]));
  const examples = $("examples");
  examples.replaceChildren();
  data.examples.forEach((part, i) => {
    if (data.examples.length > 1) examples.appendChild(el("h4", "Prompt " + (i + 1)));
    if (!part.length) examples.appendChild(el("p", "none (zero-shot)", "meta"));
    const list = el("ol", null, "examples");
    part.forEach((ex) => {
      const item = el("li", null, "example");
      if (config.thumbnails) {
        const img = el("img");
        img.alt = "";
        img.loading = "lazy";
        img.src = "/v1/examples/" + encodeURIComponent(ex.id) + "/image";
        img.onerror = () => img.remove();
        item.appendChild(img);
      }
      const text = el("div");
      text.appendChild(el("p", ex.caption, "ex-caption"));
      text.appendChild(el("p", "Q: " + ex.question));
      text.appendChild(el("p", "A: " + ex.answer, "ex-answer"));
      item.appendChild(text);
      list.appendChild(item);
    });
    examples.appendChild(list);
  });
  $("prompts").replaceChildren(...data.prompts.map((p) => el("pre", p)));
}

$("image").addEventListener("change", (e) => setImage(e.target.files[0]));
const drop = $("drop");
drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (e) => {
  e.preventDefault();
  drop.classList.remove("over");
  setImage(e.dataTransfer.files[0]);
});
drop.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") $("image").click(); });
document.querySelectorAll("button.demo").forEach((b) => b.addEventListener("click", () => tryExample(b)));
$("form").addEventListener("submit", ask);
