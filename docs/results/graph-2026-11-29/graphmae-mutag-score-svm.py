import numpy as np, sys, glob, warnings
warnings.filterwarnings("ignore")
from sklearn.model_selection import StratifiedKFold, GridSearchCV
from sklearn.svm import SVC
def svm(x,y):
    r=[]
    for tr,te in StratifiedKFold(10,shuffle=True,random_state=0).split(x,y):
        clf=GridSearchCV(SVC(random_state=42),{"C":[1e-3,1e-2,1e-1,1,10]}, n_jobs=1); clf.fit(x[tr],y[tr]); r.append((clf.predict(x[te])==y[te]).mean())
    return np.mean(r)
for d in sys.argv[1:]:
    fs=[f for f in sorted(glob.glob(d+"/*.npy")) if not f.endswith(".labels.npy")]
    accs=[]; norms=[]
    for f in fs:
        x=np.load(f); y=np.load(f.replace(".npy",".labels.npy")); accs.append(svm(x,y)); norms.append(np.abs(x).mean())
    print(d, len(fs), "svm mean %.2f std %.2f" % (np.mean(accs)*100, np.std(accs)*100), "mean|x| %.3g" % np.mean(norms), x.shape)
