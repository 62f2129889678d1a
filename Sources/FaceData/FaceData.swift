// FaceData module
