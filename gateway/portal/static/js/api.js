// The gateway's Custom Vision REST API, called exactly as the SDKs call it: training v3.3 with the Training-Key;
// and KubeVision's own routes (usage), with the same key.
const TRAINING = new URL("../customvision/v3.3/training", document.baseURI).pathname;
const KUBEVISION = new URL("../kubevision/v1", document.baseURI).pathname;
export const PREDICTION_BASE = new URL("../customvision/v3.1/Prediction", document.baseURI).href;
const UPLOAD_BATCH = 16; // files a request: a progress step, and well under the API's 64 a batch
const RATE_LIMIT_RETRIES = 5; // 429s waited out before one is shown

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

function query(parameters = {}) {
  const search = new URLSearchParams();
  for (const [name, value] of Object.entries(parameters)) {
    if (value === undefined || value === null || value === "") continue;
    search.set(name, Array.isArray(value) ? value.join(",") : String(value));
  }
  const text = search.toString();
  return text ? `?${text}` : "";
}

export class Api {
  constructor(trainingKey) {
    this.key = trainingKey;
  }

  async call(method, path, {params, json, body, headers = {}, base = TRAINING} = {}) {
    const options = {method, headers: {"Training-Key": this.key, ...headers}};
    if (json !== undefined) {
      options.body = JSON.stringify(json);
      options.headers["Content-Type"] = "application/json";
    } else if (body !== undefined) {
      options.body = body;
    }
    let response;
    for (let attempt = 0; ; attempt++) {
      try {
        response = await fetch(`${base}${path}${query(params)}`, options);
      } catch (error) {
        throw new ApiError(0, "NetworkError", `The gateway did not answer: ${error.message}`);
      }
      // Over the key's rate limit (a screen loads many things at once): wait as told, and ask again.
      if (response.status !== 429 || attempt >= RATE_LIMIT_RETRIES) break;
      const seconds = Number(response.headers.get("Retry-After")) || 1;
      await new Promise((resolve) => setTimeout(resolve, seconds * 1000));
    }
    const text = await response.text();
    let data = null;
    try { data = text ? JSON.parse(text) : null; } catch { data = null; }
    if (!response.ok) {
      const detail = data?.error || data || {};
      throw new ApiError(response.status, detail.code || `HTTP ${response.status}`,
                         detail.message || text || response.statusText);
    }
    return data;
  }

  // domains and projects
  domains() { return this.call("GET", "/domains"); }
  projects() { return this.call("GET", "/projects"); }
  project(id) { return this.call("GET", `/projects/${id}`); }
  createProject(fields) { return this.call("POST", "/projects", {params: fields}); }
  deleteProject(id) { return this.call("DELETE", `/projects/${id}`); }

  // tags
  tags(projectId) { return this.call("GET", `/projects/${projectId}/tags`); }
  createTag(projectId, name) { return this.call("POST", `/projects/${projectId}/tags`, {params: {name}}); }

  // images: filter is "all", "tagged" or "untagged"
  images(projectId, {filter = "all", tagIds, take, skip, orderBy = "Newest"} = {}) {
    const path = filter === "all" ? "" : `/${filter}`;
    return this.call("GET", `/projects/${projectId}/images${path}`, {params: {tagIds, take, skip, orderBy}});
  }
  imageCount(projectId, {filter = "all", tagIds} = {}) {
    const path = filter === "all" ? "" : `/${filter}`;
    return this.call("GET", `/projects/${projectId}/images${path}/count`, {params: {tagIds}});
  }
  tagImages(projectId, imageIds, tagIds) {
    const tags = imageIds.flatMap((imageId) => tagIds.map((tagId) => ({imageId, tagId})));
    return this.call("POST", `/projects/${projectId}/images/tags`, {json: {tags}});
  }
  untagImages(projectId, imageIds, tagIds) {
    return this.call("DELETE", `/projects/${projectId}/images/tags`, {params: {imageIds, tagIds}});
  }
  deleteImages(projectId, imageIds) {
    return this.call("DELETE", `/projects/${projectId}/images`, {params: {imageIds}});
  }
  imagesByIds(projectId, imageIds) {
    return this.call("GET", `/projects/${projectId}/images/id`, {params: {imageIds}});
  }

  // regions (detection): each {imageId, tagId, left, top, width, height}, fractions of the image
  createRegions(projectId, regions) {
    return this.call("POST", `/projects/${projectId}/images/regions`, {json: {regions}});
  }
  deleteRegions(projectId, regionIds) {
    return this.call("DELETE", `/projects/${projectId}/images/regions`, {params: {regionIds}});
  }

  /** Upload files in batches; onBatch(results, files) hears each batch's per-file results (or its refusal). */
  async uploadImages(projectId, files, tagIds, onBatch) {
    for (let start = 0; start < files.length; start += UPLOAD_BATCH) {
      const batch = files.slice(start, start + UPLOAD_BATCH);
      const form = new FormData();
      batch.forEach((file) => form.append("imageData", file, file.name));
      try {
        const summary = await this.call("POST", `/projects/${projectId}/images`, {params: {tagIds}, body: form});
        onBatch(summary.images, batch);
      } catch (error) {
        onBatch(batch.map(() => ({status: error.code, message: error.message})), batch);
      }
    }
  }

  // training and iterations
  train(projectId, {trainingType, reservedBudgetInHours, forceTrain}) {
    return this.call("POST", `/projects/${projectId}/train`,
                     {params: {trainingType, reservedBudgetInHours, forceTrain: forceTrain || undefined}});
  }
  iterations(projectId) { return this.call("GET", `/projects/${projectId}/iterations`); }
  publish(projectId, id, publishName) {
    return this.call("POST", `/projects/${projectId}/iterations/${id}/publish`,
                     {params: {publishName, predictionId: "kubevision"}});
  }
  unpublish(projectId, id) { return this.call("DELETE", `/projects/${projectId}/iterations/${id}/publish`); }
  performance(projectId, id, threshold, overlapThreshold) {
    return this.call("GET", `/projects/${projectId}/iterations/${id}/performance`,
                     {params: {threshold, overlapThreshold}});
  }
  /** Every held-out image with its tags and the iteration's predictions (Custom Vision's GetImagePerformances). */
  async imagePerformances(projectId, id) {
    const all = [];
    for (let skip = 0; ; skip += 256) {
      const page = await this.call("GET", `/projects/${projectId}/iterations/${id}/performance/images`,
                                   {params: {take: 256, skip}});
      all.push(...page);
      if (page.length < 256) return all;
    }
  }
  exportIteration(projectId, id) {
    return this.call("POST", `/projects/${projectId}/iterations/${id}/export`, {params: {platform: "ONNX"}});
  }
  exports(projectId, id) { return this.call("GET", `/projects/${projectId}/iterations/${id}/export`); }

  // quick tests and stored predictions
  quickTestImage(projectId, iterationId, file) {
    const form = new FormData();
    form.append("imageData", file, file.name);
    return this.call("POST", `/projects/${projectId}/quicktest/image`, {params: {iterationId}, body: form});
  }
  quickTestUrl(projectId, iterationId, url) {
    return this.call("POST", `/projects/${projectId}/quicktest/url`, {params: {iterationId}, json: {url}});
  }
  queryPredictions(projectId, token) {
    return this.call("POST", `/projects/${projectId}/predictions/query`, {json: token});
  }
  deletePredictions(projectId, ids) {
    return this.call("DELETE", `/projects/${projectId}/predictions`, {params: {ids}});
  }
  imagesFromPredictions(projectId, images) {
    return this.call("POST", `/projects/${projectId}/images/predictions`, {json: {images}});
  }

  // KubeVision's own: the key's namespace's usage by project over a window (24h, 7d, 30d)
  usage(since) { return this.call("GET", "/usage", {base: KUBEVISION, params: {since}}); }
}
