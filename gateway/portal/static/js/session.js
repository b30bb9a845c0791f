// The keys live in this tab's session storage only: never in a URL, gone when the tab closes.
const TRAINING = "kubevision.trainingKey";
const PREDICTION = "kubevision.predictionKey";

export const session = {
  get trainingKey() { return sessionStorage.getItem(TRAINING) || ""; },
  get predictionKey() { return sessionStorage.getItem(PREDICTION) || ""; },
  signIn(trainingKey, predictionKey) {
    sessionStorage.setItem(TRAINING, trainingKey);
    this.setPredictionKey(predictionKey);
  },
  setPredictionKey(key) {
    if (key) sessionStorage.setItem(PREDICTION, key);
    else sessionStorage.removeItem(PREDICTION);
  },
  signOut() {
    sessionStorage.removeItem(TRAINING);
    sessionStorage.removeItem(PREDICTION);
  },
};
