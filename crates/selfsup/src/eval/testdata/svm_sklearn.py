# Generates eval/testdata/svm_sklearn.json: a small three-class problem scored by TS2Vec's
# fit_svm protocol in scikit-learn (SVC rbf, gamma='scale', GridSearchCV cv=5 over the C grid).
import json, numpy as np
from sklearn.svm import SVC
from sklearn.model_selection import GridSearchCV
rng = np.random.default_rng(0)
n, d = 66, 5
y = np.array([i % 3 for i in range(n)])
centres = rng.normal(size=(3, d)) * 1.2
X = centres[y] + rng.normal(size=(n, d))
yt = np.array([i % 3 for i in range(45)])
Xt = centres[yt] + rng.normal(size=(45, d))
X = X.astype(np.float32).astype(np.float64); Xt = Xt.astype(np.float32).astype(np.float64)
grid = [0.0001, 0.001, 0.01, 0.1, 1, 10, 100, 1000, 10000, np.inf]
gs = GridSearchCV(SVC(C=np.inf, gamma='scale'), {'C': grid}, cv=5)
gs.fit(X, y)
best = gs.best_estimator_
out = {
    "train": X.tolist(), "train_labels": y.tolist(), "test": Xt.tolist(), "test_labels": yt.tolist(),
    "gamma": 1.0 / (d * X.var()),
    "cv_accuracy": gs.cv_results_["mean_test_score"].tolist(),
    "best_c_index": int(gs.best_index_),
    "test_predictions": best.predict(Xt).tolist(),
    "test_accuracy": float(best.score(Xt, yt)),
    "sklearn": __import__("sklearn").__version__,
}
json.dump(out, open("svm_sklearn.json", "w"))
print(out["cv_accuracy"], out["best_c_index"], out["test_accuracy"])
